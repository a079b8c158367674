//! attachment-urls through the real wasm in workerd, against the real
//! PostgREST and its RLS. The stack signs with self-hosted Storage tokens
//! (`ATTACHMENT_SIGNER=storage-local`), so each URL's token is checked here
//! the way Storage checks it: HS256 with Storage's secret, `url` claim equal
//! to `<bucket>/<path>`, unexpired.

use anyhow::{ensure, Context as _};
use edge_e2e::{ensure_eq, Reply, World};
use edge_stack::DemoUser;
use jwt_compact::{alg::Hs256, alg::Hs256Key, prelude::*};
use serde_json::{json, Value};

/// The same routes with the `s3` signer, against a real S3-compatible server.
pub mod s3;

const FUNCTION: &str = "attachment-urls";
/// Its routes in openapi.yaml (every variant's too).
pub(crate) const SIGN: &str = "/attachment-urls/attachments/sign";
pub(crate) const UPLOAD_URL: &str = "/attachment-urls/attachments/upload-url";
/// attachment-urls served again with its PostgREST requests counted.
pub const COUNTED: &str = "attachment-urls-counted";
/// The seeded attachment on Acme's ticket (`hello.txt`).
pub(crate) const SEEDED: &str = "dddddddd-dddd-4ddd-8ddd-dddddddddddd";
/// The seeded support reply it hangs off, written by the member.
pub(crate) const REPLY: &str = "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee";
/// The customer's question on the same ticket.
const CUSTOMER_MESSAGE: &str = "cccccccc-cccc-4ccc-8ccc-cccccccccccc";
/// Acme, the account the seeded ticket belongs to.
const ACME: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
/// attachment-urls configured to take more than the store does.
const WIDE: &str = "attachment-urls-wide";

async fn post(
    world: &World,
    route: &str,
    token: Option<&str>,
    body: &Value,
) -> anyhow::Result<Reply> {
    post_to(world, FUNCTION, route, token, body).await
}

pub(crate) async fn post_to(
    world: &World,
    function: &str,
    route: &str,
    token: Option<&str>,
    body: &Value,
) -> anyhow::Result<Reply> {
    world
        .post(function, route)
        .json(body)
        .bearer_if(token)
        .send()
        .await
}

/// `POST /attachments/upload-url` as `user`, for a fresh file name.
async fn upload_url_as(
    world: &World,
    function: &str,
    user: DemoUser,
    message_id: &str,
    content_type: &str,
    size: u64,
) -> anyhow::Result<(Reply, String)> {
    let name = format!("file {}", uuid::Uuid::new_v4().simple());
    let body = json!({"message_id": message_id, "file_name": name, "content_type": content_type, "size": size});
    let token = world.stack.user_token(user);
    let reply = post_to(
        world,
        function,
        "/attachments/upload-url",
        Some(&token),
        &body,
    )
    .await?;
    reply.documented(&world.openapi, "POST", UPLOAD_URL)?;
    Ok((reply, name))
}

/// A `message_attachments` row inserted as `user` straight through
/// PostgREST, past the function, at a well-formed path of Acme's.
async fn insert_directly(
    world: &World,
    user: DemoUser,
    message_id: &str,
    file_name: &str,
    content_type: &str,
    size: u64,
) -> anyhow::Result<Reply> {
    let path = format!(
        "{ACME}/{message_id}/{}/{}",
        uuid::Uuid::new_v4(),
        file_name.replace(' ', "_")
    );
    let request = world
        .http
        .post(format!(
            "{}/message_attachments",
            world.stack.postgrest_url()
        ))
        .header("apikey", world.stack.anon_key())
        .bearer_auth(world.stack.user_token(user))
        .json(
            &json!({"message_id": message_id, "object_path": path, "file_name": file_name,
                      "content_type": content_type, "size_bytes": size}),
        );
    Reply::read(request.send().await?).await
}

/// How many attachment rows carry this file name.
pub(crate) async fn rows_named(world: &World, file_name: &str) -> anyhow::Result<String> {
    let count = world
        .stack
        .psql(&format!(
            "select count(*) from public.message_attachments where file_name = '{file_name}'"
        ))
        .await?;
    Ok(count.trim().to_owned())
}

/// The claims of a signed Storage URL, verified as Storage would.
fn storage_claims(url: &str) -> anyhow::Result<Value> {
    let token = url.split("token=").nth(1).context("no token in the URL")?;
    let untrusted = UntrustedToken::new(token).map_err(|e| anyhow::anyhow!("token: {e}"))?;
    let key = Hs256Key::new(edge_stack::STORAGE_JWT_SECRET);
    let token: Token<Value> = Hs256
        .validator(&key)
        .validate(&untrusted)
        .map_err(|e| anyhow::anyhow!("signature: {e}"))?;
    // jwt-compact lifts the registered time claims out of `custom`.
    let claims = token.claims();
    let mut all = claims.custom.clone();
    all["exp"] = json!(claims.expiration.map(|t| t.timestamp()));
    all["iat"] = json!(claims.issued_at.map(|t| t.timestamp()));
    Ok(all)
}

fn entries(reply: &Reply) -> anyhow::Result<Vec<Value>> {
    reply.json()?["urls"].as_array().cloned().context("urls")
}

/// `/attachments/sign` asks PostgREST once, whatever the number of ids (up
/// to the limit of 100): one `id=in.(...)` read as the caller, never a
/// request per id. Counted at the counting proxy in front of PostgREST that
/// only the counted variant of attachment-urls goes through.
pub async fn signing_any_number_of_ids_is_one_postgrest_request(
    world: &World,
) -> anyhow::Result<()> {
    let counter = world
        .stack
        .postgrest_counter(COUNTED)
        .context("attachment-urls is served counted")?;
    let token = world.stack.user_token(DemoUser::Member);
    for n in [1, 50, 100] {
        // The seeded file first, then ids that exist nowhere (each a 404).
        let ids: Vec<String> = std::iter::once(SEEDED.to_owned())
            .chain((1..n).map(|_| uuid::Uuid::new_v4().to_string()))
            .collect();
        let before = counter.count();
        let reply = Reply::read(
            world
                .http
                .post(format!("{}/attachments/sign", world.function(COUNTED)))
                .bearer_auth(&token)
                .json(&json!({ "ids": ids }))
                .send()
                .await?,
        )
        .await?;
        reply.expect(200).with_context(|| format!("{n} ids"))?;
        let urls = entries(&reply)?;
        ensure_eq!(urls.len(), n, "an entry per id");
        ensure!(urls[0]["url"].is_string(), "the seeded file is signed");
        let requests = &counter.requests()[before..];
        ensure_eq!(requests.len(), 1, "PostgREST requests for {n} ids");
        let path = requests[0]["path"].as_str().unwrap_or_default();
        ensure!(
            path.starts_with("/message_attachments?") && ids.iter().all(|id| path.contains(id)),
            "one read of every id: {path}"
        );
        ensure_eq!(
            requests[0]["headers"]["authorization"],
            format!("Bearer {token}"),
            "as the caller"
        );
    }
    Ok(())
}

pub async fn members_get_signed_urls_others_get_404s(world: &World) -> anyhow::Result<()> {
    let ghost = uuid::Uuid::new_v4().to_string();
    let body = json!({"ids": [SEEDED, ghost], "expires_in": 120});
    for user in [DemoUser::Member, DemoUser::Owner] {
        let reply = post(
            world,
            "/attachments/sign",
            Some(&world.stack.user_token(user)),
            &body,
        )
        .await?;
        reply
            .expect(200)
            .with_context(|| format!("{user:?}"))?
            .documented(&world.openapi, "POST", SIGN)?;
        let urls = entries(&reply)?;
        ensure_eq!(urls[0]["id"], SEEDED, "order kept");
        let url = urls[0]["url"]
            .as_str()
            .context("a URL for the seeded file")?;
        ensure!(
            url.contains("/object/sign/attachments/"),
            "a Storage download URL: {url}"
        );
        let claims = storage_claims(url)?;
        let expected = format!("attachments/aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa/{REPLY}/ffffffff-ffff-4fff-8fff-ffffffffffff/hello.txt");
        ensure_eq!(
            claims["url"],
            expected.as_str(),
            "the token names exactly this object"
        );
        let ttl =
            claims["exp"].as_i64().unwrap_or_default() - claims["iat"].as_i64().unwrap_or_default();
        ensure_eq!(ttl, 120, "expires_in honoured");
        ensure_eq!(urls[1]["error"]["status"], 404, "unknown id");
    }

    // `download: true` asks Storage to send the file as an attachment.
    let reply = post(
        world,
        "/attachments/sign",
        Some(&world.stack.user_token(DemoUser::Member)),
        &json!({"ids": [SEEDED], "download": true}),
    )
    .await?;
    let url = entries(&reply)?[0]["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    ensure!(
        url.ends_with("&download=hello.txt"),
        "download parameter: {url}"
    );

    // The outsider sees nothing, and nothing tells a hidden id from a missing one.
    let reply = post(
        world,
        "/attachments/sign",
        Some(&world.stack.user_token(DemoUser::Outsider)),
        &body,
    )
    .await?;
    reply.expect(200).context("outsider")?;
    let urls = entries(&reply)?;
    ensure_eq!(
        urls[0]["error"],
        urls[1]["error"],
        "hidden looks like missing"
    );
    ensure!(
        urls.iter().all(|u| u.get("url").is_none()),
        "no URL for the outsider"
    );

    for token in [None, Some(world.stack.anon_key())] {
        let reply = post(world, "/attachments/sign", token.as_deref(), &body).await?;
        reply
            .expect(401)
            .context("without a user")?
            .documented(&world.openapi, "POST", SIGN)?;
    }
    Ok(())
}

pub async fn upload_urls_insert_the_row_only_where_rls_allows(world: &World) -> anyhow::Result<()> {
    let name = format!("screenshot {}.png", uuid::Uuid::new_v4().simple());
    let body =
        json!({"message_id": REPLY, "file_name": name, "content_type": "image/png", "size": 2048});
    let reply = post(
        world,
        "/attachments/upload-url",
        Some(&world.stack.user_token(DemoUser::Member)),
        &body,
    )
    .await?;
    reply
        .expect(201)
        .context("member")?
        .documented(&world.openapi, "POST", UPLOAD_URL)?;
    let answer = reply.json()?;
    let path = answer["object_path"].as_str().context("object_path")?;
    ensure!(
        path.starts_with(&format!("aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa/{REPLY}/")),
        "server-made path: {path}"
    );
    ensure!(!path.contains(' '), "a safe object name: {path}");
    ensure_eq!(answer["method"], "PUT", "upload method");
    let claims = storage_claims(answer["url"].as_str().unwrap_or_default())?;
    let object = format!("attachments/{path}");
    ensure_eq!(
        claims["url"],
        object.as_str(),
        "the upload token names the object"
    );
    let row = world
        .stack
        .psql(&format!(
            "select file_name, content_type, size_bytes, created_by from public.message_attachments where id = '{}'",
            answer["attachment_id"].as_str().unwrap_or_default()
        ))
        .await?;
    ensure_eq!(
        row.trim(),
        format!("{name}|image/png|2048|{}", DemoUser::Member.id()),
        "the row, in the member's name"
    );

    // The outsider cannot see the message: 404, and no row.
    let name = format!("intruder {}.png", uuid::Uuid::new_v4().simple());
    let body =
        json!({"message_id": REPLY, "file_name": name, "content_type": "image/png", "size": 10});
    let reply = post(
        world,
        "/attachments/upload-url",
        Some(&world.stack.user_token(DemoUser::Outsider)),
        &body,
    )
    .await?;
    reply.expect(404).context("outsider")?;
    let rows = world
        .stack
        .psql(&format!(
            "select count(*) from public.message_attachments where file_name = '{name}'"
        ))
        .await?;
    ensure_eq!(rows.trim(), "0", "no row for the outsider");
    Ok(())
}

pub async fn traversal_and_oversized_uploads_are_refused(world: &World) -> anyhow::Result<()> {
    let token = world.stack.user_token(DemoUser::Member);
    for (body, field) in [
        (
            json!({"message_id": REPLY, "file_name": "../../etc/passwd", "content_type": "text/plain", "size": 10}),
            "file_name",
        ),
        (
            json!({"message_id": REPLY, "file_name": "big.pdf", "content_type": "application/pdf", "size": 1u64 << 40}),
            "size",
        ),
        (
            json!({"message_id": REPLY, "file_name": "run.exe", "content_type": "application/x-msdownload", "size": 10}),
            "content_type",
        ),
    ] {
        let reply = post(world, "/attachments/upload-url", Some(&token), &body).await?;
        reply
            .expect(422)
            .context(field)?
            .documented(&world.openapi, "POST", UPLOAD_URL)?;
        ensure_eq!(
            reply.json()?["errors"][0]["field"],
            field,
            "the failing field"
        );
    }
    Ok(())
}

pub async fn the_store_refuses_what_the_function_refuses(world: &World) -> anyhow::Result<()> {
    // Straight through PostgREST, past the function: an SVG claimed as
    // invoice.png, and 20 MiB of PDF. The table refuses both.
    for (name, content_type, size) in [
        (
            format!("invoice {}.png", uuid::Uuid::new_v4().simple()),
            "image/svg+xml",
            2048,
        ),
        (
            format!("big {}.pdf", uuid::Uuid::new_v4().simple()),
            "application/pdf",
            20 << 20,
        ),
    ] {
        let reply =
            insert_directly(world, DemoUser::Member, REPLY, &name, content_type, size).await?;
        reply.expect(400).with_context(|| {
            format!("{content_type} {size}: PostgREST's answer to a check violation")
        })?;
        ensure_eq!(reply.json()?["code"], "23514", "{content_type} {size}");
        ensure_eq!(rows_named(world, &name).await?, "0", "no row for {name}");
    }

    // The function configured to take more than the bucket: the store's
    // refusal is a 422, and nothing is registered.
    for (content_type, size) in [("image/svg+xml", 2048), ("image/png", 20 << 20)] {
        let (reply, name) =
            upload_url_as(world, WIDE, DemoUser::Member, REPLY, content_type, size).await?;
        reply
            .expect(422)
            .with_context(|| format!("{content_type} {size} through {WIDE}"))?;
        ensure_eq!(
            rows_named(world, &name).await?,
            "0",
            "no row for {content_type} {size}"
        );
    }
    let (reply, _) = upload_url_as(world, WIDE, DemoUser::Member, REPLY, "image/png", 2048).await?;
    reply
        .expect(201)
        .with_context(|| format!("what both take still works through {WIDE}"))?;
    Ok(())
}

pub async fn every_upload_the_function_takes_by_default_the_store_takes(
    world: &World,
) -> anyhow::Result<()> {
    const MAX: u64 = 10 << 20;
    for content_type in [
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
    ] {
        let (reply, name) =
            upload_url_as(world, FUNCTION, DemoUser::Member, REPLY, content_type, MAX).await?;
        reply
            .expect(201)
            .with_context(|| format!("{content_type}, {MAX} bytes"))?;
        ensure_eq!(
            rows_named(world, &name).await?,
            "1",
            "{content_type} registered"
        );
    }
    let (reply, _) = upload_url_as(
        world,
        FUNCTION,
        DemoUser::Member,
        REPLY,
        "image/png",
        MAX + 1,
    )
    .await?;
    reply
        .expect(422)
        .context("one byte over the default limit")?;
    Ok(())
}

pub async fn attachments_go_only_on_messages_the_caller_wrote(world: &World) -> anyhow::Result<()> {
    // The customer's question, and the member's reply seen by the owner.
    for (user, message, whose) in [
        (DemoUser::Member, CUSTOMER_MESSAGE, "the customer's message"),
        (DemoUser::Owner, REPLY, "a colleague's reply"),
    ] {
        let (reply, name) = upload_url_as(world, FUNCTION, user, message, "text/plain", 10).await?;
        reply
            .expect(403)
            .with_context(|| format!("{user:?} on {whose}"))?;
        ensure_eq!(rows_named(world, &name).await?, "0", "no row on {whose}");

        let name = format!("direct {}.txt", uuid::Uuid::new_v4().simple());
        let reply = insert_directly(world, user, message, &name, "text/plain", 10).await?;
        reply
            .expect(403)
            .with_context(|| format!("{user:?} on {whose}, through PostgREST"))?;
        ensure_eq!(
            rows_named(world, &name).await?,
            "0",
            "no direct row on {whose}"
        );
    }
    let (reply, _) =
        upload_url_as(world, FUNCTION, DemoUser::Member, REPLY, "text/plain", 10).await?;
    reply.expect(201).context("the member on their own reply")?;
    Ok(())
}
