//! Ticket intake through the real wasm in workerd, the real PostgREST and
//! PostgreSQL, and the captcha stand-in. Every case asserts the answer and
//! the rows written (or that none were).

pub mod browser;

use anyhow::{ensure, Context as _};
use edge_e2e::{ensure_eq, Reply, World};
use serde_json::{json, Value};
use std::time::Duration;

pub(crate) const FUNCTION: &str = "ticket-intake";
/// Its route in openapi.yaml (every variant's too).
pub(crate) const TICKETS: &str = "/ticket-intake/tickets";
const ORIGIN: &str = "http://localhost:3000";

/// The captcha providers, each with the ticket-intake instance that uses
/// it (the hCaptcha one is a variant of the same build; see `e2e.rs`).
#[derive(Debug, Clone, Copy)]
enum Provider {
    Turnstile,
    HCaptcha,
}

const PROVIDERS: [Provider; 2] = [Provider::Turnstile, Provider::HCaptcha];

impl Provider {
    fn function(self) -> &'static str {
        match self {
            Provider::Turnstile => FUNCTION,
            Provider::HCaptcha => "ticket-intake-hcaptcha",
        }
    }

    /// The form field the provider's widget fills.
    fn form_field(self) -> &'static str {
        match self {
            Provider::Turnstile => "cf-turnstile-response",
            Provider::HCaptcha => "h-captcha-response",
        }
    }
}

pub(crate) use edge_e2e::unique;

pub(crate) fn submission(title: &str, token: &str) -> Value {
    json!({
        "intake_key": "acme",
        "title": title,
        "content": "The printer is on fire.\nPlease advise.",
        "customer_email": "ada@example.com",
        "customer_name": "Ada",
        "priority": "high",
        "captcha_token": token,
    })
}

/// An address of its own for each case, so the per-IP limit is per case.
pub(crate) fn ip() -> String {
    let n = uuid::Uuid::new_v4().as_bytes()[0];
    format!("198.51.{}.{}", n, uuid::Uuid::new_v4().as_bytes()[1])
}

async fn post_json(world: &World, body: &Value, headers: &[(&str, &str)]) -> anyhow::Result<Reply> {
    post_json_to(world, FUNCTION, body, headers).await
}

pub(crate) async fn post_json_to(
    world: &World,
    function: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> anyhow::Result<Reply> {
    headers
        .iter()
        .fold(
            world.post(function, "/tickets").json(body),
            |call, (name, value)| call.header(name, value),
        )
        .send()
        .await
}

async fn count(world: &World, sql: &str) -> anyhow::Result<i64> {
    let out = world.stack.psql(sql).await?;
    out.trim()
        .parse()
        .with_context(|| format!("count from {sql:?}: {out:?}"))
}

pub(crate) async fn tickets_titled(world: &World, title: &str) -> anyhow::Result<i64> {
    count(
        world,
        &format!("select count(*) from public.tickets where title = '{title}'"),
    )
    .await
}

fn captcha_calls(world: &World, token: &str) -> usize {
    world
        .stack
        .captcha()
        .map(|stub| {
            stub.requests()
                .iter()
                .filter(|r| r["response"] == token)
                .count()
        })
        .unwrap_or_default()
}

/// An account of its own (owned by the demo owner) with an intake whose
/// settings are `columns` (SQL literals), for a case that needs limits or
/// rules no other case may see; returns its intake key and account id.
async fn own_intake(world: &World, columns: &[(&str, &str)]) -> anyhow::Result<(String, String)> {
    let key = unique("form");
    let (names, values): (Vec<&str>, Vec<&str>) = columns.iter().copied().unzip();
    let account = world
        .stack
        .psql(&format!(
            "with account as (insert into public.accounts (primary_owner_user_id, name, slug) \
             values ('11111111-1111-4111-8111-111111111111', 'E2E {key}', '{key}') returning id) \
             insert into public.ticket_intakes (account_id, intake_key{}) \
             select id, '{key}'{} from account returning account_id",
            names.iter().map(|n| format!(", {n}")).collect::<String>(),
            values.iter().map(|v| format!(", {v}")).collect::<String>(),
        ))
        .await?
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    ensure!(!account.is_empty(), "the intake {key} was not created");
    Ok((key, account))
}

/// The slots taken in an account's rate-limit window, over all windows.
async fn account_hits(world: &World, account: &str) -> anyhow::Result<i64> {
    count(
        world,
        &format!("select coalesce(sum(hits), 0) from kit.intake_rate_counters where bucket = 'account:{account}'"),
    )
    .await
}

pub async fn json_submission_creates_the_ticket_and_its_first_message(
    world: &World,
) -> anyhow::Result<()> {
    for provider in PROVIDERS {
        json_submission(world, provider)
            .await
            .with_context(|| format!("with {provider:?}"))?;
    }
    Ok(())
}

async fn json_submission(world: &World, provider: Provider) -> anyhow::Result<()> {
    let (title, token, ip) = (unique("json"), unique("pass"), ip());
    let reply = post_json_to(
        world,
        provider.function(),
        &submission(&title, &token),
        &[("origin", ORIGIN), ("cf-connecting-ip", &ip)],
    )
    .await?;
    reply
        .expect(201)
        .context("created")?
        .documented(&world.openapi, "POST", TICKETS)?;
    ensure_eq!(
        reply.header("access-control-allow-origin"),
        Some(ORIGIN),
        "CORS for the account's origin"
    );
    let reference = reply.json()?["reference"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let row = world
        .stack
        .psql(&format!(
            "select t.account_id, t.priority, t.status, t.customer_email, t.customer_name, m.author, m.content \
             from public.tickets t join public.messages m on m.ticket_id = t.id where t.reference = '{reference}'"
        ))
        .await?;
    ensure_eq!(
        row.trim(),
        "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa|high|open|ada@example.com|Ada|customer|The printer is on fire.\nPlease advise.",
        "the ticket and its first message"
    );

    let calls: Vec<_> = world
        .stack
        .captcha()
        .context("captcha stand-in")?
        .requests()
        .into_iter()
        .filter(|r| r["response"] == token.as_str())
        .collect();
    ensure_eq!(calls.len(), 1, "one siteverify call");
    ensure_eq!(
        calls[0]["remoteip"],
        ip.as_str(),
        "remoteip from CF-Connecting-IP"
    );
    match provider {
        Provider::Turnstile => ensure!(
            calls[0]["idempotency_key"]
                .as_str()
                .is_some_and(|k| k.len() == 36),
            "an idempotency_key"
        ),
        // hCaptcha's siteverify documents no such field.
        Provider::HCaptcha => ensure_eq!(
            calls[0].get("idempotency_key"),
            None,
            "no idempotency_key for hCaptcha"
        ),
    }
    Ok(())
}

pub async fn form_posts_redirect_to_a_thank_you_page(world: &World) -> anyhow::Result<()> {
    for provider in PROVIDERS {
        form_post(world, provider)
            .await
            .with_context(|| format!("with {provider:?}"))?;
    }
    Ok(())
}

async fn form_post(world: &World, provider: Provider) -> anyhow::Result<()> {
    let (title, token) = (unique("form"), unique("pass"));
    let form = [
        ("intake_key", "acme"),
        ("title", title.as_str()),
        ("content", "Sent from a plain HTML form."),
        ("customer_email", "grace@example.com"),
        (provider.form_field(), token.as_str()),
        ("website", ""),
    ];
    let url = format!("{}/tickets", world.function(provider.function()));
    let reply = Reply::read(
        world
            .http
            .post(&url)
            .header("origin", ORIGIN)
            .form(&form)
            .send()
            .await?,
    )
    .await?;
    reply.expect(303).context("See Other")?;
    let thanks = redirect_target(&url, &reply)?;
    ensure!(
        thanks
            .as_str()
            .starts_with(&format!("{url}/thanks?reference=TK-")),
        "built-in thank-you page beside the form's URL: {thanks}"
    );
    ensure_eq!(tickets_titled(world, &title).await?, 1, "one ticket");

    let page = Reply::read(world.http.get(thanks.clone()).send().await?).await?;
    page.expect(200).context("thank-you page")?;
    let reference = thanks
        .query_pairs()
        .find(|(k, _)| k == "reference")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    ensure!(
        page.text().contains(&reference),
        "the page shows the reference"
    );
    Ok(())
}

/// Where a redirect sends the browser: its `Location` resolved against the
/// URL the request went to, as browsers resolve it.
fn redirect_target(request_url: &str, reply: &Reply) -> anyhow::Result<reqwest::Url> {
    let location = reply.header("location").context("location")?;
    reqwest::Url::parse(request_url)?
        .join(location)
        .with_context(|| format!("resolve Location {location:?} against {request_url}"))
}

pub async fn captcha_failures_are_refused_and_write_nothing(world: &World) -> anyhow::Result<()> {
    // (A wrong widget `action` is refused the same way; the stack does not
    // configure CAPTCHA_EXPECTED_ACTION, so the unit tests cover that one.)
    for provider in PROVIDERS {
        let mut cases = vec![
            (unique("invalid"), 400),
            (unique("expired"), 403),
            (unique("host"), 403),
            // A token solved for another site's key: hCaptcha says
            // sitekey-secret-mismatch, which a visitor can cause at will,
            // so it is their 400, not our 500.
            (unique("othersite"), 400),
            (unique("down"), 503),
            (unique("slow"), 503),
        ];
        if let Provider::HCaptcha = provider {
            // hCaptcha's public test token, sent to a function with a real
            // secret (not-using-dummy-passcode).
            cases.push((edge_stack::stubs::HCAPTCHA_TEST_TOKEN.to_owned(), 400));
        }
        for (token, status) in cases {
            let title = unique("captcha");
            let reply = post_json_to(
                world,
                provider.function(),
                &submission(&title, &token),
                &[("cf-connecting-ip", &ip())],
            )
            .await?;
            reply
                .expect(status)
                .with_context(|| format!("{provider:?}: token {token}"))?
                .documented(&world.openapi, "POST", TICKETS)?;
            ensure_eq!(
                tickets_titled(world, &title).await?,
                0,
                "{provider:?}: {token}: no ticket"
            );
            if status == 503 {
                ensure!(
                    reply.header("retry-after").is_some(),
                    "503 says when to retry"
                );
            }
        }
    }
    Ok(())
}

pub async fn a_captcha_token_is_never_accepted_twice(world: &World) -> anyhow::Result<()> {
    for provider in PROVIDERS {
        // Turnstile: our idempotency key is derived from the token, so the
        // provider answers a second verification of it as it did the
        // first, and the database is what refuses the token, with 409.
        // hCaptcha has no idempotency key: it refuses the second
        // verification itself (already-seen-response), 403.
        let second_status = match provider {
            Provider::Turnstile => 409,
            Provider::HCaptcha => 403,
        };
        let token = unique("pass");
        let first = post_json_to(
            world,
            provider.function(),
            &submission(&unique("once"), &token),
            &[("cf-connecting-ip", &ip())],
        )
        .await?;
        first
            .expect(201)
            .with_context(|| format!("{provider:?}: first use"))?;
        let title = unique("twice");
        let second = post_json_to(
            world,
            provider.function(),
            &submission(&title, &token),
            &[("cf-connecting-ip", &ip())],
        )
        .await?;
        second
            .expect(second_status)
            .with_context(|| format!("{provider:?}: second use"))?;
        ensure_eq!(
            tickets_titled(world, &title).await?,
            0,
            "{provider:?}: no second ticket"
        );
        ensure_eq!(
            captcha_calls(world, &token),
            2,
            "{provider:?}: both uses were verified with the provider"
        );
    }

    // The database refuses a token twice even when the provider never
    // spends it (Turnstile's dummy token, from the test site keys).
    let dummy = edge_stack::stubs::DUMMY_TOKEN;
    let used_before = count(
        world,
        &format!(
            "select count(*) from public.ticket_intake_submissions where captcha_token_hash = encode(extensions.digest('{dummy}', 'sha256'), 'hex')"
        ),
    )
    .await?;
    let title = unique("dummy");
    let reply = post_json(
        world,
        &submission(&title, dummy),
        &[("cf-connecting-ip", &ip())],
    )
    .await?;
    let expected = if used_before == 0 { 201 } else { 409 };
    reply.expect(expected).context("first dummy use")?;
    let again = unique("dummy-again");
    let reply = post_json(
        world,
        &submission(&again, dummy),
        &[("cf-connecting-ip", &ip())],
    )
    .await?;
    reply
        .expect(409)
        .context("the database refuses a token twice")?;
    ensure_eq!(
        tickets_titled(world, &again).await?,
        0,
        "no ticket for the reuse"
    );
    Ok(())
}

pub async fn a_filled_honeypot_gets_success_and_no_row(world: &World) -> anyhow::Result<()> {
    let title = unique("bot");
    let mut body = submission(&title, &unique("pass"));
    body["website"] = json!("http://spam.example");
    let reply = post_json(world, &body, &[]).await?;
    reply.expect(201).context("looks like success")?;
    ensure_eq!(tickets_titled(world, &title).await?, 0, "nothing written");
    ensure_eq!(
        captcha_calls(world, body["captcha_token"].as_str().unwrap_or_default()),
        0,
        "no captcha call"
    );
    Ok(())
}

pub async fn the_per_ip_rate_limit_answers_429(world: &World) -> anyhow::Result<()> {
    let address = ip();
    // Limits count in fixed windows aligned to the minute (Acme's is 60 s):
    // start well inside one, so all six attempts fall in the same window.
    edge_e2e::inside_one_window(Duration::from_secs(60), Duration::from_secs(10)).await;
    // Acme allows 5 submissions per IP a minute (seed). Invalid tokens are
    // counted by the address's window and create no ticket.
    for attempt in 1..=5 {
        let reply = post_json(
            world,
            &submission(&unique("limit"), &unique("invalid")),
            &[("cf-connecting-ip", &address)],
        )
        .await?;
        reply
            .expect(400)
            .with_context(|| format!("attempt {attempt} is counted, not limited"))?;
    }
    let title = unique("limited");
    let token = unique("pass");
    let reply = post_json(
        world,
        &submission(&title, &token),
        &[("cf-connecting-ip", &address)],
    )
    .await?;
    reply
        .expect(429)
        .context("sixth attempt")?
        .documented(&world.openapi, "POST", TICKETS)?;
    let retry: u32 = reply
        .header("retry-after")
        .context("retry-after")?
        .parse()?;
    ensure!(
        (1..=60).contains(&retry),
        "Retry-After within the window: {retry}"
    );
    ensure_eq!(tickets_titled(world, &title).await?, 0, "nothing written");
    ensure_eq!(captcha_calls(world, &token), 0, "the captcha is not spent");

    let other = post_json(
        world,
        &submission(&unique("other-ip"), &unique("pass")),
        &[("cf-connecting-ip", &ip())],
    )
    .await?;
    other
        .expect(201)
        .context("another address is not limited")?;
    Ok(())
}

pub async fn origins_are_checked_against_the_account(world: &World) -> anyhow::Result<()> {
    let (title, token) = (unique("origin"), unique("pass"));
    let reply = post_json(
        world,
        &submission(&title, &token),
        &[("origin", "https://evil.example")],
    )
    .await?;
    reply.expect(403).context("foreign origin")?;
    ensure_eq!(
        reply.header("access-control-allow-origin"),
        None,
        "no CORS for it"
    );
    ensure_eq!(tickets_titled(world, &title).await?, 0, "nothing written");
    ensure_eq!(captcha_calls(world, &token), 0, "the captcha is not spent");

    // CORS follows every enabled intake's origins, preflights and answers
    // alike: Acme's are in no static CORS setting (the stack gives
    // ticket-intake none), so only the accounts' lists can allow them.
    let url = format!("{}/tickets", world.function(FUNCTION));
    for (origin, allowed) in [
        ("http://127.0.0.1:3000", true),
        (ORIGIN, true),
        ("https://evil.example", false),
    ] {
        let preflight = Reply::read(
            world
                .http
                .request(reqwest::Method::OPTIONS, &url)
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "content-type, idempotency-key",
                )
                .send()
                .await?,
        )
        .await?;
        preflight
            .expect(if allowed { 204 } else { 403 })
            .with_context(|| format!("preflight from {origin}"))?;
        ensure_eq!(
            preflight.header("access-control-allow-origin"),
            allowed.then_some(origin),
            "preflight from {origin}: allow-origin"
        );
        ensure!(
            preflight
                .header("vary")
                .is_some_and(|v| v.to_ascii_lowercase().contains("origin")),
            "preflight from {origin}: Vary: Origin"
        );

        // Answers that are not a ticket: invalid fields (422), an unknown
        // key (404) and a refused captcha (400; 403 for a foreign origin,
        // refused before the captcha).
        let invalid = json!({"intake_key": "acme", "title": " ", "captcha_token": "x"});
        let mut unknown = submission(&unique("cors"), &unique("pass"));
        unknown["intake_key"] = json!("no-such-form");
        let bad_captcha = submission(&unique("cors"), &unique("invalid"));
        for (body, status) in [(invalid, 422), (unknown, 404), (bad_captcha, 400)] {
            let reply = post_json(
                world,
                &body,
                &[("origin", origin), ("cf-connecting-ip", &ip())],
            )
            .await?;
            let expected = if allowed || status != 400 {
                status
            } else {
                403
            };
            reply
                .expect(expected)
                .with_context(|| format!("{origin}: {body}"))?;
            ensure_eq!(
                reply.header("access-control-allow-origin"),
                allowed.then_some(origin),
                "{origin}: a {status} carries allow-origin exactly when the origin is allowed"
            );
            ensure!(
                reply
                    .header("access-control-expose-headers")
                    .is_some_and(|v| v.contains("retry-after"))
                    == allowed,
                "{origin}: {status}: Retry-After is readable exactly when the origin is allowed"
            );
        }
    }
    Ok(())
}

pub async fn unknown_and_disabled_intakes_are_404(world: &World) -> anyhow::Result<()> {
    for key in ["no-such-form", "closed-shop"] {
        let title = unique(key);
        let mut body = submission(&title, &unique("pass"));
        body["intake_key"] = json!(key);
        let reply = post_json(world, &body, &[("cf-connecting-ip", &ip())]).await?;
        reply
            .expect(404)
            .context(key)?
            .documented(&world.openapi, "POST", TICKETS)?;
        ensure_eq!(
            tickets_titled(world, &title).await?,
            0,
            "{key}: nothing written"
        );
    }
    Ok(())
}

pub async fn invalid_fields_are_one_422_before_anything_else(world: &World) -> anyhow::Result<()> {
    let token = unique("pass");
    let body = json!({"intake_key": "acme", "title": "  ", "content": "x\u{0007}", "customer_email": "nope", "captcha_token": token});
    let reply = post_json(world, &body, &[]).await?;
    reply
        .expect(422)
        .context("validation")?
        .documented(&world.openapi, "POST", TICKETS)?;
    ensure_eq!(
        reply.fields()?,
        ["title", "content", "customer_email"],
        "every failing field"
    );
    ensure_eq!(captcha_calls(world, &token), 0, "the captcha is not spent");

    let big = json!({"intake_key": "acme", "title": "t", "content": "x".repeat(70_000), "customer_email": "a@b.example", "captcha_token": "x"});
    post_json(world, &big, &[])
        .await?
        .expect(413)
        .context("oversized body")?;
    Ok(())
}

pub async fn an_idempotency_key_replays_the_same_ticket(world: &World) -> anyhow::Result<()> {
    let title = unique("idem");
    let key = unique("key");
    let ip = ip();
    let headers = [
        ("idempotency-key", key.as_str()),
        ("cf-connecting-ip", ip.as_str()),
    ];
    let first = post_json(world, &submission(&title, &unique("pass")), &headers).await?;
    first.expect(201).context("first")?;
    // The retry may carry the same or a fresh token; either way no new ticket.
    let second = post_json(world, &submission(&title, &unique("pass")), &headers).await?;
    second.expect(200).context("replay")?;
    ensure_eq!(
        second.header("idempotent-replayed"),
        Some("true"),
        "marked as a replay"
    );
    ensure_eq!(
        second.json()?["reference"],
        first.json()?["reference"],
        "same ticket"
    );
    ensure_eq!(tickets_titled(world, &title).await?, 1, "one ticket");

    let changed = post_json(
        world,
        &submission(&unique("other-body"), &unique("pass")),
        &headers,
    )
    .await?;
    changed
        .expect(422)
        .context("same key, different submission")?;
    Ok(())
}

pub async fn postgrest_down_is_503_and_the_captcha_is_kept(world: &World) -> anyhow::Result<()> {
    let (title, token) = (unique("nodb"), unique("pass"));
    let reply = Reply::read(
        world
            .http
            .post(format!("{}/tickets", world.function("ticket-intake-nodb")))
            .json(&submission(&title, &token))
            .send()
            .await?,
    )
    .await?;
    reply.expect(503).context("PostgREST unreachable")?;
    ensure!(reply.header("retry-after").is_some(), "Retry-After");
    reply.documented(&world.openapi, "POST", TICKETS)?;
    ensure_eq!(tickets_titled(world, &title).await?, 0, "nothing written");
    ensure_eq!(
        captcha_calls(world, &token),
        0,
        "the visitor's captcha is not spent"
    );
    Ok(())
}

pub async fn a_burst_from_one_address_leaves_the_form_open_to_others(
    world: &World,
) -> anyhow::Result<()> {
    // 3 per address and 5 per account an hour: the burst below is far past
    // both. It takes seconds, but an hour's windows are aligned to the
    // epoch too: near a full hour it waits for the next, so it sits in one.
    let (key, account) = own_intake(
        world,
        &[
            ("rate_limit_per_ip", "3"),
            ("rate_limit_per_account", "5"),
            ("rate_limit_window_seconds", "3600"),
        ],
    )
    .await?;
    edge_e2e::inside_one_window(Duration::from_secs(3600), Duration::from_secs(30)).await;
    let body = |title: &str, token: &str| {
        let mut body = submission(title, token);
        body["intake_key"] = json!(key);
        body
    };

    // Junk from one address, no captcha solved: 60 posts, 20 at a time.
    let attacker = ip();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let batch = futures_util::future::join_all((0..20).map(|_| {
            let junk = body(&unique("junk"), &unique("invalid"));
            let attacker = attacker.clone();
            async move {
                post_json(world, &junk, &[("cf-connecting-ip", attacker.as_str())])
                    .await
                    .map(|r| r.status)
            }
        }))
        .await;
        for status in batch {
            statuses.push(status?);
        }
    }
    let tally = |wanted: u16| statuses.iter().filter(|s| **s == wanted).count();
    ensure_eq!(
        (tally(400), tally(429)),
        (3, 57),
        "the address's first 3 reach the captcha (and fail), the rest are limited: {statuses:?}"
    );

    let title = unique("visitor");
    let visitor = post_json(
        world,
        &body(&title, &unique("pass")),
        &[("cf-connecting-ip", &ip())],
    )
    .await?;
    visitor
        .expect(201)
        .context("a visitor from another address still gets through")?;
    ensure_eq!(
        tickets_titled(world, &title).await?,
        1,
        "the visitor's ticket"
    );
    ensure_eq!(
        account_hits(world, &account).await?,
        1,
        "of the account's window, only the ticket took a slot; the burst none"
    );
    Ok(())
}

pub async fn the_accounts_categories_and_priorities_are_field_errors_before_the_captcha(
    world: &World,
) -> anyhow::Result<()> {
    let (key, _) = own_intake(
        world,
        &[
            ("allowed_categories", "'{general,billing}'"),
            ("allowed_priorities", "'{low,medium}'"),
        ],
    )
    .await?;
    let (title, token) = (unique("rules"), unique("pass"));
    let mut body = submission(&title, &token);
    body["intake_key"] = json!(key);
    body["category"] = json!("bugs");
    body["priority"] = json!("high");
    let reply = post_json(world, &body, &[("cf-connecting-ip", &ip())]).await?;
    reply
        .expect(422)
        .context("refused")?
        .documented(&world.openapi, "POST", TICKETS)?;
    let problem = reply.json()?;
    let errors: Vec<(String, String)> = problem["errors"]
        .as_array()
        .context("errors[] in the problem")?
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap_or_default().to_owned(),
                e["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    ensure_eq!(
        errors,
        [
            (
                "category".to_owned(),
                "must be one of: general, billing".to_owned()
            ),
            (
                "priority".to_owned(),
                "must be one of: low, medium".to_owned()
            ),
        ],
        "one field error each, saying what the form accepts"
    );
    ensure_eq!(captcha_calls(world, &token), 0, "the captcha is not spent");
    ensure_eq!(tickets_titled(world, &title).await?, 0, "nothing written");

    // The visitor picks accepted values, with the same (unspent) token.
    body["category"] = json!("billing");
    body["priority"] = json!("low");
    let reply = post_json(world, &body, &[("cf-connecting-ip", &ip())]).await?;
    reply.expect(201).context("accepted values")?;
    ensure_eq!(tickets_titled(world, &title).await?, 1, "the ticket");
    Ok(())
}

pub async fn form_redirects_stay_on_this_function(world: &World) -> anyhow::Result<()> {
    let base = world.function(FUNCTION);
    let own = reqwest::Url::parse(base)?;
    // A filled honeypot needs no key, captcha or database: the cheapest way
    // to get a redirect built from a path of the attacker's choosing.
    let bot = [("website", "http://spam.example")];
    let title = unique("redirect");
    for path in [
        "//evil.example/tickets",
        "//evil.example/tickets/",
        "/tickets//",
        "/functions/v1/ticket-intake/tickets",
    ] {
        let token = unique("pass");
        let person = [
            ("intake_key", "acme"),
            ("title", title.as_str()),
            ("content", "Posted to an odd path."),
            ("customer_email", "grace@example.com"),
            ("cf-turnstile-response", token.as_str()),
        ];
        let forms: [&[(&str, &str)]; 2] = [&bot, &person];
        for form in forms {
            let url = format!("{base}{path}");
            let reply = Reply::read(
                world
                    .http
                    .post(&url)
                    .header("cf-connecting-ip", ip())
                    .form(form)
                    .send()
                    .await?,
            )
            .await?;
            reply.expect(303).context(path)?;
            let target = redirect_target(&url, &reply)?;
            ensure!(
                target.scheme() == own.scheme()
                    && target.host_str() == own.host_str()
                    && target.port() == own.port(),
                "{path}: Location {:?} leads to {target}, off this function",
                reply.header("location")
            );
            let page = Reply::read(world.http.get(target.clone()).send().await?).await?;
            page.expect(200)
                .with_context(|| format!("{path}: the thank-you page at {target}"))?;
        }
    }
    ensure_eq!(
        tickets_titled(world, &title).await?,
        4,
        "the person's posts were taken"
    );
    Ok(())
}
