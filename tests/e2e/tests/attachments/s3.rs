//! attachment-urls with the `s3` signer (the `attachment-urls-s3` variant)
//! against a real S3-compatible server, s3s-fs (`edge_stack::s3`), which
//! checks SigV4 presigned URLs as S3 does. The URLs the function signs must
//! work there, and the same URLs tampered with or expired must be refused
//! by the server itself (403), not by anything of ours.

use super::{REPLY, SIGN, UPLOAD_URL};
use anyhow::{ensure, Context as _};
use edge_e2e::{ensure_eq, Reply, World};
use edge_stack::DemoUser;
use serde_json::{json, Value};
use std::time::Duration;

const FUNCTION: &str = "attachment-urls-s3";

async fn post(world: &World, route: &str, body: &Value) -> anyhow::Result<Reply> {
    world
        .post(FUNCTION, route)
        .bearer(&world.stack.user_token(DemoUser::Member))
        .json(body)
        .send()
        .await
}

/// Sends `body` to an upload answer's URL with its method and headers, the
/// headers changed by `tweak` first.
async fn put(
    world: &World,
    url: &str,
    upload: &Value,
    body: &[u8],
    tweak: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> anyhow::Result<Reply> {
    let method: reqwest::Method = upload["method"].as_str().context("method")?.parse()?;
    let mut headers = upload["headers"].as_object().cloned().context("headers")?;
    tweak(&mut headers);
    let mut request = world.http.request(method, url).body(body.to_vec());
    for (name, value) in &headers {
        request = request.header(name, value.as_str().context("header value")?);
    }
    Reply::read(request.send().await?).await
}

async fn get(world: &World, url: &str) -> anyhow::Result<Reply> {
    Reply::read(world.http.get(url).send().await?).await
}

/// A fresh upload URL for a text file of `size` bytes, as the member.
async fn upload_url(world: &World, size: usize) -> anyhow::Result<Value> {
    // `(`, `)` and `!` stay in the object name and are percent-encoded in
    // the URL, so the server must agree with our encoding of the path.
    let name = format!("notes (v{})!.txt", uuid::Uuid::new_v4().simple());
    let reply = post(
        world,
        "/attachments/upload-url",
        &json!({"message_id": REPLY, "file_name": name, "content_type": "text/plain", "size": size}),
    )
    .await?;
    reply
        .expect(201)
        .context("upload-url")?
        .documented(&world.openapi, "POST", UPLOAD_URL)?;
    reply.json()
}

/// A signed download URL for attachment `id`, as the member.
async fn download_url(world: &World, id: &str, expires_in: u32) -> anyhow::Result<String> {
    let reply = post(
        world,
        "/attachments/sign",
        &json!({"ids": [id], "expires_in": expires_in}),
    )
    .await?;
    reply
        .expect(200)
        .context("sign")?
        .documented(&world.openapi, "POST", SIGN)?;
    let url = reply.json()?["urls"][0]["url"]
        .as_str()
        .map(str::to_owned)
        .context("a download URL")?;
    Ok(url)
}

/// Uploads a small unique text file; returns its upload answer and bytes.
async fn uploaded(world: &World) -> anyhow::Result<(Value, Vec<u8>)> {
    let bytes = format!("attachment {}\n", uuid::Uuid::new_v4()).into_bytes();
    let upload = upload_url(world, bytes.len()).await?;
    let url = upload["url"].as_str().context("url")?;
    let reply = put(world, url, &upload, &bytes, |_| {}).await?;
    reply
        .expect(200)
        .context("the server accepts the signed PUT")?;
    Ok((upload, bytes))
}

/// The S3 error code in a refusal, checked to be a 403.
fn refused(reply: &Reply, what: &str) -> anyhow::Result<String> {
    reply.expect(403).with_context(|| what.to_owned())?;
    let body = reply.text();
    let code = body
        .split("<Code>")
        .nth(1)
        .and_then(|rest| rest.split("</Code>").next())
        .with_context(|| format!("{what}: no S3 error code in {body}"))?;
    Ok(code.to_owned())
}

/// `url` with the first hex digit of its signature changed.
fn flip_signature(url: &str) -> anyhow::Result<String> {
    const PARAM: &str = "X-Amz-Signature=";
    let at = url.find(PARAM).context("no signature in the URL")? + PARAM.len();
    let digit = url.get(at..=at).context("an empty signature")?;
    let other = if digit == "0" { "1" } else { "0" };
    Ok(format!("{}{other}{}", &url[..at], &url[at + 1..]))
}

pub async fn signed_urls_upload_to_and_download_from_the_store(
    world: &World,
) -> anyhow::Result<()> {
    let s3 = world.stack.s3().context("the stack runs no S3 server")?;
    let (upload, bytes) = uploaded(world).await?;
    let path = upload["object_path"].as_str().context("object_path")?;
    let url = upload["url"].as_str().context("url")?;
    ensure!(
        url.starts_with(&format!("{}/attachments/", s3.url())),
        "a path-style URL for the bucket on the local server: {url}"
    );
    ensure!(
        url.contains("X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost&"),
        "type and size are signed: {url}"
    );
    ensure_eq!(upload["method"], "PUT", "upload method");
    ensure_eq!(
        upload["headers"],
        json!({"content-length": bytes.len().to_string(), "content-type": "text/plain"}),
        "the headers to send"
    );
    let stored =
        std::fs::read(s3.object_file(path)).with_context(|| format!("the server stored {path}"))?;
    ensure_eq!(stored, bytes, "the stored object");

    let id = upload["attachment_id"].as_str().context("attachment_id")?;
    let url = download_url(world, id, 120).await?;
    ensure!(
        url.contains("X-Amz-Expires=120&"),
        "expires_in honoured: {url}"
    );
    let reply = get(world, &url).await?;
    reply
        .expect(200)
        .context("the server accepts the signed GET")?;
    ensure_eq!(reply.body, bytes, "the same bytes back");
    Ok(())
}

pub async fn the_store_refuses_tampered_urls(world: &World) -> anyhow::Result<()> {
    let (upload, bytes) = uploaded(world).await?;
    let id = upload["attachment_id"].as_str().context("attachment_id")?;
    let url = download_url(world, id, 60).await?;
    let name = url
        .split('?')
        .next()
        .and_then(|path| path.rsplit('/').next())
        .context("object name")?
        .to_owned();

    // Downloads: one character of the signature, the key, or the lifetime.
    let downloads = [
        ("signature", flip_signature(&url)?),
        ("key", url.replacen(&name, &format!("x{name}"), 1)),
        (
            "lifetime",
            url.replacen("X-Amz-Expires=60&", "X-Amz-Expires=3600&", 1),
        ),
    ];
    for (what, tampered) in &downloads {
        ensure!(tampered != &url, "{what}: the URL was changed");
        let reply = get(world, tampered).await?;
        ensure_eq!(
            refused(&reply, what)?,
            "SignatureDoesNotMatch",
            "GET, tampered {what}"
        );
    }

    // Uploads: another key, or a body of another type or size than signed.
    let put_url = upload["url"].as_str().context("url")?;
    let other_key = put_url.replacen("/notes_", "/other_", 1);
    ensure!(other_key != put_url, "the upload URL's key was changed");
    let html = |h: &mut serde_json::Map<String, Value>| {
        h.insert("content-type".into(), json!("text/html"));
    };
    let longer = [bytes.as_slice(), b"!"].concat();
    let longer_length = |h: &mut serde_json::Map<String, Value>| {
        h.insert("content-length".into(), json!(longer.len().to_string()));
    };
    for (what, reply) in [
        (
            "signature",
            put(world, &flip_signature(put_url)?, &upload, &bytes, |_| {}).await?,
        ),
        (
            "key",
            put(world, &other_key, &upload, &bytes, |_| {}).await?,
        ),
        (
            "content-type",
            put(world, put_url, &upload, &bytes, html).await?,
        ),
        (
            "size",
            put(world, put_url, &upload, &longer, longer_length).await?,
        ),
    ] {
        ensure_eq!(
            refused(&reply, what)?,
            "SignatureDoesNotMatch",
            "PUT, tampered {what}"
        );
    }

    // The untampered URL still works, and the object is unchanged.
    let reply = get(world, &url).await?;
    reply.expect(200).context("the untampered URL")?;
    ensure_eq!(reply.body, bytes, "nothing overwrote the object");
    Ok(())
}

pub async fn the_store_refuses_expired_urls(world: &World) -> anyhow::Result<()> {
    let (upload, bytes) = uploaded(world).await?;
    let id = upload["attachment_id"].as_str().context("attachment_id")?;
    // 0 is clamped to the shortest lifetime the function gives, 1 s.
    let short = download_url(world, id, 0).await?;
    ensure!(
        short.contains("X-Amz-Expires=1&"),
        "the shortest lifetime: {short}"
    );
    let long = download_url(world, id, 60).await?;

    // X-Amz-Date is whole seconds, so 1 s after signing plus a margin.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let reply = get(world, &short).await?;
    ensure_eq!(refused(&reply, "expired")?, "AccessDenied", "expired GET");
    ensure!(
        reply.text().contains("Request has expired"),
        "refused for its age: {}",
        reply.text()
    );

    // One signed at the same time with a longer lifetime still works.
    let reply = get(world, &long).await?;
    reply.expect(200).context("the unexpired URL")?;
    ensure_eq!(reply.body, bytes, "its bytes");
    Ok(())
}

/// What `scripts/dev` prints works: the seed's attachment (stored by the
/// stack's S3 server at start, as `stack up` runs it) downloads its bytes
/// through the URL the function signs.
pub async fn the_seeded_attachment_downloads_from_the_local_store(
    world: &World,
) -> anyhow::Result<()> {
    let url = download_url(world, super::SEEDED, 60).await?;
    let reply = get(world, &url).await?;
    reply.expect(200).with_context(|| url.clone())?;
    ensure_eq!(
        reply.body,
        edge_stack::s3::SEED_OBJECT_BYTES.to_vec(),
        "the seed's bytes"
    );
    Ok(())
}
