//! What every function shares, through the real wasm in workerd: health,
//! routing, problem+json, CORS, body limits, request ids.

pub mod db;

use anyhow::{ensure, Context as _};
use edge_e2e::{ensure_eq, Reply, World};

/// Every function the project ships; each must be built and served.
pub const FUNCTIONS: [&str; 4] = [
    "attachment-urls",
    "billing-webhook",
    "send-email",
    "ticket-intake",
];

async fn get(world: &World, url: String) -> anyhow::Result<Reply> {
    Reply::read(
        world
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?,
    )
    .await
}

pub async fn health_answers_on_every_function(world: &World) -> anyhow::Result<()> {
    for name in FUNCTIONS {
        let reply = get(world, format!("{}/health", world.function(name))).await?;
        ensure_eq!(reply.status, 200, "{name} /health");
        world
            .openapi
            .check("GET", &format!("/{name}/health"), &reply)?;
        let body = reply.json()?;
        ensure_eq!(body["function"], name, "{name} names itself");
        ensure!(
            body.get("postgrest").is_none(),
            "shallow health must not probe: {body}"
        );
        ensure!(
            reply.header("x-request-id").is_some(),
            "{name}: no x-request-id"
        );
    }
    Ok(())
}

pub async fn deep_health_reaches_postgrest_as_service(world: &World) -> anyhow::Result<()> {
    for name in FUNCTIONS {
        let reply = get(world, format!("{}/health?deep=1", world.function(name))).await?;
        ensure_eq!(
            reply.status,
            200,
            "{name} deep health: {}",
            String::from_utf8_lossy(&reply.body)
        );
        world
            .openapi
            .check("GET", &format!("/{name}/health"), &reply)?;
        ensure_eq!(reply.json()?["postgrest"], "ok", "{name} reached PostgREST");
    }
    Ok(())
}

pub async fn routes_answer_under_a_prefix(world: &World) -> anyhow::Result<()> {
    let base = world.function("ticket-intake");
    let reply = get(world, format!("{base}/functions/v1/ticket-intake/health")).await?;
    ensure_eq!(reply.status, 200, "prefixed health");
    Ok(())
}

pub async fn unknown_routes_are_problem_json_404(world: &World) -> anyhow::Result<()> {
    for name in FUNCTIONS {
        let reply = get(world, format!("{}/no-such-route", world.function(name))).await?;
        ensure_eq!(reply.status, 404, "{name} unknown route");
        ensure_eq!(
            reply.media_type(),
            "application/problem+json",
            "{name} 404 media type"
        );
        let problem = reply.json()?;
        world.openapi.check_schema("Problem", &problem)?;
        ensure_eq!(problem["code"], "not_found", "{name} problem code");
        ensure_eq!(
            problem["request_id"].as_str(),
            reply.header("x-request-id"),
            "{name}: body and header carry the same request id"
        );
    }
    Ok(())
}

pub async fn wrong_method_is_405_with_allow(world: &World) -> anyhow::Result<()> {
    let url = format!("{}/health", world.function("send-email"));
    let reply = Reply::read(world.http.post(&url).body("{}").send().await?).await?;
    ensure_eq!(reply.status, 405, "POST /health");
    ensure_eq!(reply.header("allow"), Some("GET, HEAD"), "Allow header");
    world.openapi.check_schema("Problem", &reply.json()?)?;
    Ok(())
}

pub async fn oversized_body_is_413_before_any_work(world: &World) -> anyhow::Result<()> {
    let url = format!("{}/anything", world.function("attachment-urls"));
    let body = vec![b'x'; 65 * 1024];
    let reply = Reply::read(
        world
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?,
    )
    .await?;
    ensure_eq!(reply.status, 413, "65 KiB body over the 64 KiB default");
    let problem = reply.json()?;
    world.openapi.check_schema("Problem", &problem)?;
    ensure_eq!(problem["code"], "payload_too_large", "problem code");
    Ok(())
}

pub async fn cors_preflight_follows_the_allowlist(world: &World) -> anyhow::Result<()> {
    // send-email allows browsers by the static list only (ticket-intake's
    // origins come from the accounts; its own tests cover those).
    let url = format!("{}/emails", world.function("send-email"));
    let preflight = |origin: &'static str| {
        world
            .http
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    // The stack allows http://localhost:3000, as a frontend's dev server.
    let ok = Reply::read(preflight("http://localhost:3000").await?).await?;
    ensure_eq!(ok.status, 204, "allowed origin preflight");
    ensure_eq!(
        ok.header("access-control-allow-origin"),
        Some("http://localhost:3000"),
        "allow-origin"
    );
    ensure!(
        ok.header("access-control-allow-headers")
            .unwrap_or("")
            .contains("content-type"),
        "allow-headers lists content-type"
    );

    let denied = Reply::read(preflight("https://evil.example").await?).await?;
    ensure_eq!(denied.status, 403, "other origin preflight");
    ensure_eq!(
        denied.header("access-control-allow-origin"),
        None,
        "no allow-origin for others"
    );

    let simple = Reply::read(
        world
            .http
            .get(format!("{}/health", world.function("send-email")))
            .header("origin", "http://localhost:3000")
            .send()
            .await?,
    )
    .await?;
    ensure_eq!(
        simple.header("access-control-allow-origin"),
        Some("http://localhost:3000"),
        "simple request"
    );
    Ok(())
}

pub async fn request_ids_are_echoed_and_generated(world: &World) -> anyhow::Result<()> {
    let url = format!("{}/health", world.function("attachment-urls"));
    let echoed = Reply::read(
        world
            .http
            .get(&url)
            .header("x-request-id", "trace-42")
            .send()
            .await?,
    )
    .await?;
    ensure_eq!(
        echoed.header("x-request-id"),
        Some("trace-42"),
        "caller's id kept"
    );

    let first = get(world, url.clone()).await?;
    let second = get(world, url).await?;
    let (a, b) = (first.header("x-request-id"), second.header("x-request-id"));
    ensure!(a.is_some() && a != b, "fresh ids differ: {a:?} {b:?}");
    Ok(())
}

/// ES256 user tokens (Supabase's recommended asymmetric keys) are verified
/// inside workerd through WebCrypto against the project's JWKS: a valid one
/// gets past authentication (to validation: 422), a tampered one is 401.
pub async fn es256_tokens_are_verified_in_workerd(world: &World) -> anyhow::Result<()> {
    let url = format!("{}/emails", world.function("send-email"));
    let token = world.stack.user_token_es256(edge_stack::DemoUser::Member)?;
    let post = |token: String| {
        world
            .http
            .post(&url)
            .bearer_auth(token)
            .json(&serde_json::json!({}))
            .send()
    };
    let valid = Reply::read(post(token.clone()).await?).await?;
    ensure_eq!(
        valid.status,
        422,
        "authenticated, then the empty body is refused"
    );

    // Flip one signature character: same header and claims, bad signature.
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered)?;
    let refused = Reply::read(post(tampered).await?).await?;
    ensure_eq!(refused.status, 401, "tampered ES256 signature");

    let fetched = world
        .stack
        .auth()
        .map(|a| a.requests().len())
        .unwrap_or_default();
    ensure!(fetched >= 1, "the function fetched the JWKS");
    Ok(())
}

/// A function whose configuration is broken answers a problem+json 500 on
/// every route; the variable's name is in its log, not in the answer.
pub async fn a_misconfigured_function_is_a_clear_500(world: &World) -> anyhow::Result<()> {
    let url = format!("{}/tickets", world.function("ticket-intake-misconfigured"));
    let reply = Reply::read(
        world
            .http
            .post(&url)
            .json(&serde_json::json!({}))
            .send()
            .await?,
    )
    .await?;
    ensure_eq!(reply.status, 500, "misconfigured");
    let problem = reply.json()?;
    world.openapi.check_schema("Problem", &problem)?;
    ensure_eq!(problem["code"], "misconfigured", "problem code");
    ensure!(
        !String::from_utf8_lossy(&reply.body).contains("CAPTCHA"),
        "no variable names in the answer"
    );
    Ok(())
}
