//! send-email through the real wasm in workerd, the real PostgREST and
//! PostgreSQL, and the email provider stand-in (Resend's API, and
//! Postmark's for the `send-email-postmark` variant). Each case signs up a
//! user of its own, so balances and daily limits do not interfere.

use anyhow::{ensure, Context as _};
use edge_e2e::{ensure_eq, Reply, World};
use serde_json::{json, Value};

pub(crate) const FUNCTION: &str = "send-email";
pub(crate) const POSTMARK: &str = "send-email-postmark";
/// The route sends go to, in openapi.yaml.
pub(crate) const EMAILS: &str = "/send-email/emails";

mod reconcile;
pub use reconcile::the_reconciler_settles_stuck_mails_once;
pub use reconcile::CRON;
mod webhooks;
pub use webhooks::deliveries_bounces_and_complaints_reach_the_mail_once;

/// A fresh user allowed to send their own subject and body (the shipped
/// policy is templates only), as most cases here do, and a token for them.
pub(crate) async fn sign_up(world: &World) -> anyhow::Result<(String, String)> {
    let (id, token) = sign_up_with_defaults(world).await?;
    world
        .stack
        .psql(&format!(
            "insert into public.email_sender_settings (user_id, custom_content_allowed) values ('{id}', true)"
        ))
        .await?;
    Ok((id, token))
}

/// A fresh user (the sign-up trigger gives them a profile and credits) under
/// the operator's default policy, and a Supabase-shaped access token for
/// them.
async fn sign_up_with_defaults(world: &World) -> anyhow::Result<(String, String)> {
    let id = uuid::Uuid::new_v4().to_string();
    let email = format!("{}@example.com", &id[..8]);
    world
        .stack
        .psql(&format!(
            "insert into auth.users (instance_id, id, aud, role, email, raw_user_meta_data, created_at, updated_at) \
             values ('00000000-0000-0000-0000-000000000000', '{id}', 'authenticated', 'authenticated', '{email}', '{{}}', now(), now())"
        ))
        .await?;
    let mut claims =
        edge_stack::tokens::user_claims(edge_stack::DemoUser::Member, chrono::Utc::now());
    claims["sub"] = json!(id);
    claims["email"] = json!(email);
    Ok((id.clone(), world.stack.mint(&claims)?))
}

pub(crate) async fn balance(world: &World, user: &str) -> anyhow::Result<(i64, i64)> {
    let out = world
        .stack
        .psql(&format!(
            "select p.credits, coalesce((select sum(amount) from public.credit_transactions t where t.user_id = p.id), 0) \
             from public.profiles p where p.id = '{user}'"
        ))
        .await?;
    let (credits, ledger) = out
        .trim()
        .split_once('|')
        .with_context(|| format!("balance of {user}: {out:?}"))?;
    Ok((credits.parse()?, ledger.parse()?))
}

/// Moves a balance to `target` through the ledger, as billing would.
async fn set_balance(world: &World, user: &str, target: i64) -> anyhow::Result<()> {
    let (credits, _) = balance(world, user).await?;
    if credits != target {
        world
            .stack
            .psql(&format!(
                "select public.grant_credits('{user}', {}, 'manual_adjustment', 'e2e-{}')",
                target - credits,
                uuid::Uuid::new_v4()
            ))
            .await?;
    }
    Ok(())
}

async fn send(
    world: &World,
    token: &str,
    body: &Value,
    key: Option<&str>,
) -> anyhow::Result<Reply> {
    send_to(world, FUNCTION, token, body, key).await
}

/// `POST /emails` on `function` (send-email or one of its variants).
pub(crate) async fn send_to(
    world: &World,
    function: &str,
    token: &str,
    body: &Value,
    key: Option<&str>,
) -> anyhow::Result<Reply> {
    let mut request = world
        .http
        .post(format!("{}/emails", world.function(function)))
        .bearer_auth(token)
        .json(body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    Reply::read(request.send().await?).await
}

pub(crate) fn mail(subject: &str) -> Value {
    json!({"to": "ada@example.com", "subject": subject, "text": "Hello from the e2e suite."})
}

/// The requests the provider stand-in received with this subject
/// (Resend's `subject` or Postmark's `Subject`).
fn provider_requests(world: &World, subject: &str) -> Vec<Value> {
    world
        .stack
        .email()
        .map(|stub| {
            stub.requests()
                .into_iter()
                .filter(|r| r["body"]["subject"] == subject || r["body"]["Subject"] == subject)
                .collect()
        })
        .unwrap_or_default()
}

/// New sends the provider stand-in received with this subject.
fn sends(world: &World, subject: &str) -> usize {
    provider_requests(world, subject)
        .iter()
        .filter(|r| r["sent"] == true)
        .count()
}

/// The id, status and refunds of the caller's mail with this subject.
pub(crate) async fn mail_by_subject(
    world: &World,
    subject: &str,
) -> anyhow::Result<(String, String, i64)> {
    let out = world
        .stack
        .psql(&format!(
            "select m.id, m.status, (select count(*) from public.credit_transactions t \
               where t.reference = m.id::text and t.reason = 'email_refund') \
             from public.user_mails m where m.subject = '{subject}'"
        ))
        .await?;
    let mut fields = out.trim().split('|');
    let (Some(id), Some(status), Some(refunds)) = (fields.next(), fields.next(), fields.next())
    else {
        anyhow::bail!("no one mail with subject {subject:?}: {out:?}");
    };
    Ok((id.to_owned(), status.to_owned(), refunds.parse()?))
}

async fn mail_status(world: &World, mail_id: &str) -> anyhow::Result<String> {
    Ok(world
        .stack
        .psql(&format!(
            "select status from public.user_mails where id = '{mail_id}'"
        ))
        .await?
        .trim()
        .to_owned())
}

pub(crate) use edge_e2e::unique;

pub async fn a_send_charges_logs_and_reaches_the_provider(world: &World) -> anyhow::Result<()> {
    let (user, token) = sign_up(world).await?;
    let (before, _) = balance(world, &user).await?;
    let subject = unique("Welcome");
    let reply = send(world, &token, &mail(&subject), Some("k-1")).await?;
    reply
        .expect(201)
        .context("sent")?
        .documented(&world.openapi, "POST", EMAILS)?;
    let body = reply.json()?;
    ensure_eq!(body["status"], "sent", "status");
    let used = body["credits_used"].as_i64().context("credits_used")?;
    ensure!(used > 0, "a send costs credits");
    ensure_eq!(
        body["credits_remaining"].as_i64(),
        Some(before - used),
        "remaining"
    );
    let (credits, ledger) = balance(world, &user).await?;
    ensure_eq!(
        (credits, ledger),
        (before - used, before - used),
        "balance equals the ledger"
    );
    ensure_eq!(
        mail_status(world, body["mail_id"].as_str().unwrap_or_default()).await?,
        "sent",
        "logged"
    );
    ensure_eq!(sends(world, &subject), 1, "one send");
    let key = world
        .stack
        .email()
        .context("email stand-in")?
        .requests()
        .into_iter()
        .find(|r| r["body"]["subject"] == subject.as_str())
        .and_then(|r| r["idempotency_key"].as_str().map(str::to_owned));
    ensure_eq!(
        key,
        Some(format!("{user}:k-1")),
        "the key reached the provider, per user"
    );
    Ok(())
}

pub async fn without_a_user_token_it_is_401(world: &World) -> anyhow::Result<()> {
    let reply = Reply::read(
        world
            .http
            .post(format!("{}/emails", world.function(FUNCTION)))
            .json(&mail("no token"))
            .send()
            .await?,
    )
    .await?;
    reply
        .expect(401)
        .context("no token")?
        .documented(&world.openapi, "POST", EMAILS)?;
    let reply = send(
        world,
        &world.stack.service_key(),
        &mail("service key"),
        None,
    )
    .await?;
    reply.expect(401).context("the service key is not a user")?;
    Ok(())
}

pub async fn too_few_credits_is_402_and_nothing_is_sent(world: &World) -> anyhow::Result<()> {
    let (user, token) = sign_up(world).await?;
    set_balance(world, &user, 0).await?;
    let subject = unique("Broke");
    let reply = send(world, &token, &mail(&subject), None).await?;
    reply
        .expect(402)
        .context("payment required")?
        .documented(&world.openapi, "POST", EMAILS)?;
    ensure_eq!(sends(world, &subject), 0, "nothing sent");
    ensure_eq!(balance(world, &user).await?, (0, 0), "never below zero");
    Ok(())
}

pub async fn the_html_is_priced_and_logged_with_the_text(world: &World) -> anyhow::Result<()> {
    // Regression: the html was neither priced nor logged beside a text, and
    // the 64 KiB body limit kept every mail below the 100 KiB step anyway.
    let (user, token) = sign_up(world).await?;
    let (before, _) = balance(world, &user).await?;
    let subject = unique("Newsletter");
    // Both at most 100,000 characters, together past the included 100 KiB.
    let html = format!("<p>{}</p>", "x".repeat(100_000 - 7));
    let text = "The same, in text. ".repeat(250);
    let body = json!({"to": "ada@example.com", "subject": subject, "text": text, "html": html});
    let reply = send(world, &token, &body, None).await?;
    reply
        .expect(201)
        .context("sent")?
        .documented(&world.openapi, "POST", EMAILS)?;
    ensure_eq!(
        reply.json()?["credits_used"].as_i64(),
        Some(2),
        "100,000 bytes of html and 4,750 of text are past the included 100 KiB: 1 + 1"
    );
    ensure_eq!(balance(world, &user).await?.0, before - 2, "charged 2");
    let logged = world
        .stack
        .psql(&format!(
            "select octet_length(content), octet_length(html) from public.user_mails where subject = '{subject}'"
        ))
        .await?;
    ensure_eq!(
        logged.trim(),
        "4750|100000",
        "the log keeps the text and all of the html"
    );
    let sent = provider_requests(world, &subject);
    ensure_eq!(
        sent.first().map(|r| r["body"]["html"] == json!(html)),
        Some(true),
        "and it is what was sent"
    );
    Ok(())
}

pub async fn ambiguous_outcomes_stay_charged_until_confirmed(world: &World) -> anyhow::Result<()> {
    // Regression: a 5xx or a timeout was refunded in full, though the
    // provider may have sent the mail: `[lost]` and `[hang]` really do.
    let (user, token) = sign_up(world).await?;
    for marker in ["[fail]", "[lost]", "[hang]"] {
        let (before, _) = balance(world, &user).await?;
        let subject = unique(marker);
        let key = format!("ambiguous-{}", uuid::Uuid::new_v4());
        let reply = send(world, &token, &mail(&subject), Some(&key)).await?;
        reply
            .expect(502)
            .context(marker)?
            .documented(&world.openapi, "POST", EMAILS)?;
        let said = reply.detail()?;
        ensure!(
            said.contains("being confirmed") && !said.contains("were refunded"),
            "{marker}: the answer says the outcome is being confirmed: {said}"
        );
        let (_, status, refunds) = mail_by_subject(world, &subject).await?;
        ensure_eq!(
            (status.as_str(), refunds),
            ("unknown", 0),
            "{marker}: kept as unknown, not refunded"
        );
        if marker == "[lost]" {
            ensure_eq!(
                sends(world, &subject),
                1,
                "[lost]: the provider did send it, so a refund would have been a free send"
            );
        }
        let (credits, ledger) = balance(world, &user).await?;
        ensure_eq!(
            (credits, ledger),
            (before - 1, before - 1),
            "{marker}: still charged, ledger agrees"
        );

        let again = send(world, &token, &mail(&subject), Some(&key)).await?;
        again
            .expect(409)
            .with_context(|| format!("{marker}: a retry with the key"))?;
        ensure!(
            again.detail()?.contains("still being confirmed"),
            "{marker}: the retry is told the outcome is being confirmed"
        );
    }
    Ok(())
}

pub async fn certain_refusals_are_refunded_exactly_once(world: &World) -> anyhow::Result<()> {
    let (user, token) = sign_up(world).await?;
    for (marker, status) in [("[reject]", 422), ("[rate-limit]", 502), ("[quota]", 502)] {
        let (before, _) = balance(world, &user).await?;
        let subject = unique(marker);
        let reply = send(world, &token, &mail(&subject), None).await?;
        reply
            .expect(status)
            .context(marker)?
            .documented(&world.openapi, "POST", EMAILS)?;
        ensure!(
            reply.detail()?.contains("refunded"),
            "{marker}: the answer says the credits came back"
        );
        ensure_eq!(
            balance(world, &user).await?,
            (before, before),
            "{marker}: refunded, ledger agrees"
        );
        let (_, status, refunds) = mail_by_subject(world, &subject).await?;
        ensure_eq!(
            (status.as_str(), refunds),
            ("refunded", 1),
            "{marker}: one refund"
        );
        ensure_eq!(sends(world, &subject), 0, "{marker}: nothing was sent");
    }
    Ok(())
}

pub async fn postmark_partial_deliveries_stay_charged(world: &World) -> anyhow::Result<()> {
    // Regression: a Postmark 406 for a mail to several recipients was
    // refunded in full, though Postmark had sent it to the active ones.
    let (user, token) = sign_up(world).await?;
    let (before, _) = balance(world, &user).await?;
    let partly = unique("Partly");
    let body = json!({"to": ["ada@example.com", "inactive-bounced@example.com"], "subject": partly, "text": "Hi"});
    let reply = send_to(world, POSTMARK, &token, &body, None).await?;
    reply
        .expect(502)
        .context("partly delivered")?
        .documented(&world.openapi, "POST", EMAILS)?;
    ensure!(
        reply.detail()?.contains("being confirmed"),
        "the outcome is being confirmed"
    );
    ensure_eq!(
        sends(world, &partly),
        1,
        "Postmark sent it (to the active recipient)"
    );
    let (_, status, refunds) = mail_by_subject(world, &partly).await?;
    ensure_eq!(
        (status.as_str(), refunds),
        ("unknown", 0),
        "kept as unknown, not refunded"
    );
    ensure_eq!(
        balance(world, &user).await?.0,
        before - 2,
        "still charged for both recipients"
    );

    let nobody = unique("Nobody");
    let body = json!({"to": "inactive-bounced@example.com", "subject": nobody, "text": "Hi"});
    let reply = send_to(world, POSTMARK, &token, &body, None).await?;
    reply.expect(422).context("every recipient inactive")?;
    ensure_eq!(reply.json()?["code"], "rejected", "rejected");
    let (_, status, refunds) = mail_by_subject(world, &nobody).await?;
    ensure_eq!(
        (status.as_str(), refunds),
        ("refunded", 1),
        "nothing was sent, so refunded once"
    );
    ensure_eq!(
        balance(world, &user).await?.0,
        before - 2,
        "that one cost nothing"
    );

    let fine = unique("Fine");
    let body = json!({"to": "ada@example.com", "subject": fine, "text": "Hi"});
    let reply = send_to(world, POSTMARK, &token, &body, None).await?;
    reply.expect(201).context("a plain Postmark send")?;
    Ok(())
}

pub async fn only_templates_unless_the_operator_allows_more(world: &World) -> anyhow::Result<()> {
    // Regression: any signed-up user could send their own html and subject
    // from the brand's address: a phishing relay.
    let (user, token) = sign_up_with_defaults(world).await?;
    let (before, _) = balance(world, &user).await?;
    let subject = unique("Your account is locked");
    let phish = json!({"to": ["ada@example.com", "grace@example.com"], "subject": subject,
                       "html": "<a href=\"https://evil.example\">Unlock</a>"});
    let reply = send(world, &token, &phish, None).await?;
    reply
        .expect(403)
        .context("own content")?
        .documented(&world.openapi, "POST", EMAILS)?;
    ensure!(
        reply.detail()?.contains("only its own templates"),
        "the answer says why"
    );
    ensure_eq!(sends(world, &subject), 0, "nothing reached the provider");

    let subjected = json!({"to": "ada@example.com", "subject": subject, "template_id": "welcome",
                           "variables": {"name": "Ada"}});
    let reply = send(world, &token, &subjected, None).await?;
    reply
        .expect(403)
        .context("a template with a subject of the sender's")?;
    ensure_eq!(balance(world, &user).await?.0, before, "nothing charged");

    let template =
        json!({"to": "ada@example.com", "template_id": "welcome", "variables": {"name": "Ada"}});
    let reply = send(world, &token, &template, Some("template-1")).await?;
    reply.expect(201).context("a template")?;
    let sent = world
        .stack
        .email()
        .context("email stand-in")?
        .requests()
        .into_iter()
        .find(|r| r["idempotency_key"] == format!("{user}:template-1"))
        .context("the template reached the provider")?;
    ensure_eq!(
        (sent["body"].get("subject"), &sent["body"]["template"]["id"]),
        (None, &json!("welcome")),
        "as a template with no subject but its own"
    );

    world
        .stack
        .psql(&format!(
            "insert into public.email_sender_settings (user_id, custom_content_allowed) values ('{user}', true)"
        ))
        .await?;
    let allowed = unique("Allowed");
    let reply = send(world, &token, &mail(&allowed), None).await?;
    reply
        .expect(201)
        .context("once the operator allows this sender their own content")?;
    Ok(())
}

pub async fn daily_limits_hold_in_the_database(world: &World) -> anyhow::Result<()> {
    let (user, token) = sign_up(world).await?;
    world
        .stack
        .psql(&format!(
            "update public.email_sender_settings set daily_mail_limit = 2, daily_recipient_limit = 3 \
             where user_id = '{user}'"
        ))
        .await?;
    let first = unique("Day 1");
    let body = json!({"to": ["a@example.com", "b@example.com"], "subject": first, "text": "Hi"});
    send(world, &token, &body, None)
        .await?
        .expect(201)
        .context("the first mail, to 2")?;
    let over = unique("Day 2");
    let body = json!({"to": ["a@example.com", "b@example.com"], "subject": over, "text": "Hi"});
    let reply = send(world, &token, &body, None).await?;
    reply
        .expect(429)
        .context("2 + 2 recipients > 3")?
        .documented(&world.openapi, "POST", EMAILS)?;
    ensure!(
        reply.detail()?.contains("Try again after"),
        "the answer says when"
    );
    ensure_eq!(sends(world, &over), 0, "nothing sent");
    let (before, _) = balance(world, &user).await?;
    send(world, &token, &mail(&unique("Day 3")), None)
        .await?
        .expect(201)
        .context("one more recipient fits")?;
    send(world, &token, &mail(&unique("Day 4")), None)
        .await?
        .expect(429)
        .context("and the 3rd mail is over the 2 a day")?;
    ensure_eq!(
        balance(world, &user).await?.0,
        before - 1,
        "refusals cost nothing"
    );

    // The same limit through PostgREST directly: it lives in reserve_email.
    let direct = Reply::read(
        world
            .http
            .post(format!("{}/rpc/reserve_email", world.stack.postgrest_url()))
            .header("apikey", world.stack.anon_key())
            .bearer_auth(&token)
            .json(&json!({"p_recipients": ["a@b.example"], "p_subject": "s", "p_content": "c",
                          "p_mail_type": "custom", "p_idempotency_key": "direct", "p_request_hash": "h"}))
            .send()
            .await?,
    )
    .await?;
    direct.expect(400).context("a direct call is refused too")?;
    ensure!(
        direct.text().contains("http_429"),
        "a direct call is refused too: {}",
        direct.text()
    );
    Ok(())
}

pub async fn a_repeated_idempotency_key_charges_and_sends_once(
    world: &World,
) -> anyhow::Result<()> {
    let (user, token) = sign_up(world).await?;
    let (before, _) = balance(world, &user).await?;
    let subject = unique("Once");
    let first = send(world, &token, &mail(&subject), Some("same-key")).await?;
    first.expect(201).context("first")?;
    let second = send(world, &token, &mail(&subject), Some("same-key")).await?;
    second.expect(200).context("replay")?;
    ensure_eq!(second.header("idempotent-replayed"), Some("true"), "marked");
    ensure_eq!(
        second.json()?["mail_id"],
        first.json()?["mail_id"],
        "same mail"
    );
    let used = first.json()?["credits_used"].as_i64().unwrap_or_default();
    ensure_eq!(
        balance(world, &user).await?.0,
        before - used,
        "charged once"
    );
    ensure_eq!(sends(world, &subject), 1, "sent once");

    let other = send(world, &token, &mail(&unique("Other")), Some("same-key")).await?;
    other.expect(422).context("same key, different email")?;
    Ok(())
}

pub async fn nobody_can_charge_another_user(world: &World) -> anyhow::Result<()> {
    let (victim, _) = sign_up(world).await?;
    let (_, token) = sign_up(world).await?;
    let (before, _) = balance(world, &victim).await?;
    // A body naming someone else is just an unknown field...
    let mut body = mail(&unique("Not yours"));
    body["user_id"] = json!(victim);
    send(world, &token, &body, None)
        .await?
        .expect(201)
        .context("sent as the caller")?;
    // ...and the database function has no user parameter to abuse.
    let direct = Reply::read(
        world
            .http
            .post(format!("{}/rpc/reserve_email", world.stack.postgrest_url()))
            .header("apikey", world.stack.anon_key())
            .bearer_auth(&token)
            .json(&json!({"p_user_id": victim, "p_recipients": ["a@b.example"], "p_subject": "s",
                          "p_content": "c", "p_mail_type": "custom", "p_idempotency_key": "x", "p_request_hash": "h"}))
            .send()
            .await?,
    )
    .await?;
    ensure!(
        direct.status >= 400,
        "reserve_email took a user id: {}",
        direct.status
    );
    let finalize = Reply::read(
        world
            .http
            .post(format!("{}/rpc/finalize_email", world.stack.postgrest_url()))
            .header("apikey", world.stack.anon_key())
            .bearer_auth(&token)
            .json(&json!({"p_mail_id": uuid::Uuid::new_v4(), "p_provider": "x", "p_outcome": "refunded",
                          "p_error": "refund me"}))
            .send()
            .await?,
    )
    .await?;
    ensure!(
        matches!(finalize.status, 401 | 403 | 404),
        "a user reached finalize_email: {}",
        finalize.status
    );
    ensure_eq!(
        balance(world, &victim).await?.0,
        before,
        "the victim was not charged"
    );
    Ok(())
}

pub async fn concurrent_sends_never_overdraw(world: &World) -> anyhow::Result<()> {
    let (user, token) = sign_up(world).await?;
    let subject = unique("Race");
    // Learn the price from one send, then leave credits for exactly N more.
    let probe = send(world, &token, &mail(&unique("Price")), None).await?;
    probe.expect(201).context("probe send")?;
    let price = probe.json()?["credits_used"].as_i64().context("price")?;
    const N: i64 = 3;
    set_balance(world, &user, N * price).await?;

    let attempts = 12;
    let replies = send_all(world, &token, &subject, attempts).await?;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    let ok = statuses.iter().filter(|s| **s == 201).count() as i64;
    let broke = statuses.iter().filter(|s| **s == 402).count() as i64;
    ensure_eq!(ok, N, "exactly N succeed: {statuses:?}");
    ensure_eq!(broke, attempts - N, "the rest are 402: {statuses:?}");
    ensure_eq!(
        balance(world, &user).await?,
        (0, 0),
        "balance ends at 0 and equals the ledger"
    );
    ensure_eq!(
        sends(world, &subject) as i64,
        N,
        "the provider saw exactly N sends"
    );
    Ok(())
}

/// Fires `count` sends at once (distinct idempotency keys) and waits for all.
async fn send_all(
    world: &World,
    token: &str,
    subject: &str,
    count: i64,
) -> anyhow::Result<Vec<Reply>> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let request = world
            .http
            .post(format!("{}/emails", world.function(FUNCTION)))
            .bearer_auth(token)
            .header("idempotency-key", format!("race-{i}"))
            .json(&mail(subject));
        tasks.spawn(async move { Reply::read(request.send().await?).await });
    }
    let mut replies = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        replies.push(joined??);
    }
    Ok(replies)
}

pub async fn a_retry_while_the_first_is_in_flight_is_409(world: &World) -> anyhow::Result<()> {
    // ...and once it timed out, the key answers 409 too, until the outcome
    // is confirmed.
    let (user, token) = sign_up(world).await?;
    let (before, _) = balance(world, &user).await?;
    // `[hang]`: the stand-in holds the first request past the function's
    // provider timeout, so the first attempt stays `reserved` meanwhile.
    let subject = unique("[hang] in flight");
    let first = {
        let request = world
            .http
            .post(format!("{}/emails", world.function(FUNCTION)))
            .bearer_auth(&token)
            .header("idempotency-key", "in-flight")
            .json(&mail(&subject));
        tokio::spawn(async move { Reply::read(request.send().await?).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let second = send(world, &token, &mail(&subject), Some("in-flight")).await?;
    second
        .expect(409)
        .context("the retry while the first is in flight")?
        .documented(&world.openapi, "POST", EMAILS)?;
    let first = first.await??;
    first
        .expect(502)
        .context("the first timed out: its outcome is unknown")?;
    ensure_eq!(
        balance(world, &user).await?,
        (before - 1, before - 1),
        "it stays charged: the provider may have sent it"
    );
    let third = send(world, &token, &mail(&subject), Some("in-flight")).await?;
    third
        .expect(409)
        .context("afterwards: that key's outcome is being confirmed")?;
    ensure!(
        third.detail()?.contains("same key"),
        "the answer says to retry with the same key, not a new one"
    );
    Ok(())
}
