//! The guarantees at scale, through the real stack: thousands of concurrent
//! requests on loopback, bounded in count (the sizes are issue 12's and the
//! README's reliability section's) and each run in seconds. A broken
//! guarantee shows as a count that is off, never as a timing threshold.
//!
//! Breaking them on purpose: removing `for update` from reserve_email's
//! profile read lets the credit race overdraw (more than 300 sends); on a
//! machine loaded by other work, the race without reserve_email's unlocked
//! 402 (in 20261201003500) saw PostgREST's pool time-out (503s) instead of
//! 402s, which a lightly loaded one does not show; dropping the unique (reason, reference)
//! of the ledger lets the refund storm refund twice; dropping the
//! billing_events unique key, or the stale check of upsert_subscription,
//! makes the webhook storm apply events twice or end in an older state.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context as _;
use edge_billing::{event::Provider, signature};
use edge_e2e::{ensure_eq, Reply, World};
use serde_json::{json, Value};

/// A fresh user with `credits` and an access token for them.
async fn user_with(world: &World, credits: i64) -> anyhow::Result<(String, String)> {
    let id = uuid::Uuid::new_v4().to_string();
    let email = format!("{}@example.com", &id[..8]);
    world
        .stack
        .psql(&format!(
            "insert into auth.users (instance_id, id, aud, role, email, raw_user_meta_data, created_at, updated_at) \
             values ('00000000-0000-0000-0000-000000000000', '{id}', 'authenticated', 'authenticated', '{email}', '{{}}', now(), now()); \
             insert into public.email_sender_settings (user_id, custom_content_allowed, daily_mail_limit, daily_recipient_limit) \
             values ('{id}', true, 100000, 100000); \
             select public.grant_credits('{id}', {credits} - credits, 'manual_adjustment', 'load-{id}') \
             from public.profiles where id = '{id}' and credits <> {credits}"
        ))
        .await?;
    let mut claims =
        edge_stack::tokens::user_claims(edge_stack::DemoUser::Member, chrono::Utc::now());
    claims["sub"] = json!(id);
    claims["email"] = json!(email);
    Ok((id, world.stack.mint(&claims)?))
}

/// `credits|ledger sum` of a user.
async fn balance(world: &World, user: &str) -> anyhow::Result<String> {
    Ok(world
        .stack
        .psql(&format!(
            "select p.credits || '|' || coalesce((select sum(amount) from public.credit_transactions t \
             where t.user_id = p.id), 0) from public.profiles p where p.id = '{user}'"
        ))
        .await?
        .trim()
        .to_owned())
}

/// `count` sends of one mail at once, each with its own idempotency key;
/// the statuses, sorted.
async fn send_storm(
    world: &World,
    token: &str,
    subject: &str,
    count: usize,
) -> anyhow::Result<Vec<u16>> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let request = world
            .http
            .post(format!("{}/emails", world.function("send-email-load")))
            .bearer_auth(token)
            .header("idempotency-key", format!("storm-{i}"))
            .json(&json!({"to": "ada@example.com", "subject": subject, "text": "Load."}));
        tasks.spawn(async move { anyhow::Ok(request.send().await?.status().as_u16()) });
    }
    let mut statuses = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        statuses.push(joined??);
    }
    statuses.sort_unstable();
    Ok(statuses)
}

/// What the email stand-in received with this subject: (sent, refused).
fn provider_calls(world: &World, subject: &str) -> (usize, usize) {
    let requests = world
        .stack
        .email()
        .map(|stub| stub.requests())
        .unwrap_or_default();
    let mine = requests.iter().filter(|r| r["body"]["subject"] == subject);
    let sent = mine.clone().filter(|r| r["sent"] == true).count();
    (sent, mine.count() - sent)
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// The credit race at scale: credits for 300 mails, 2,000 sends at once.
pub async fn two_thousand_sends_for_three_hundred_credits_send_three_hundred(
    world: &World,
) -> anyhow::Result<()> {
    let (user, token) = user_with(world, 300).await?;
    let subject = format!("Storm {}", uuid::Uuid::new_v4().simple());
    let statuses = send_storm(world, &token, &subject, 2_000).await?;
    ensure_eq!(count(&statuses, 201), 300, "exactly 300 sent");
    ensure_eq!(count(&statuses, 402), 1_700, "the rest are 402");
    ensure_eq!(
        statuses.iter().filter(|s| **s >= 500).count(),
        0,
        "no 5xx: {:?}",
        statuses.iter().filter(|s| **s >= 500).collect::<Vec<_>>()
    );
    ensure_eq!(balance(world, &user).await?, "0|0", "balance 0 = ledger");
    ensure_eq!(
        provider_calls(world, &subject),
        (300, 0),
        "exactly 300 provider calls"
    );
    Ok(())
}

/// The refund storm: 500 sends at once that the provider all refuses
/// (its documented 422 for a message it will not send): each refunded once.
pub async fn five_hundred_refused_sends_are_each_refunded_once(
    world: &World,
) -> anyhow::Result<()> {
    let (user, token) = user_with(world, 1_000).await?;
    // `[reject]` in the subject: the stand-in answers Resend's 422.
    let subject = format!("[reject] Storm {}", uuid::Uuid::new_v4().simple());
    let statuses = send_storm(world, &token, &subject, 500).await?;
    ensure_eq!(
        count(&statuses, 422),
        500,
        "every send refused: {statuses:?}"
    );
    ensure_eq!(
        balance(world, &user).await?,
        "1000|1000",
        "every credit back, = ledger"
    );
    let refunds = world
        .stack
        .psql(&format!(
            "select count(*) || '|' || count(distinct reference) from public.credit_transactions \
             where user_id = '{user}' and reason = 'email_refund'"
        ))
        .await?;
    ensure_eq!(refunds.trim(), "500|500", "one refund per mail");
    ensure_eq!(provider_calls(world, &subject), (0, 500), "each tried once");
    Ok(())
}

/// One provider's storm: `events` distinct deliveries, each sent ten
/// times, all at once, shuffled.
async fn storm(world: &World, provider: Provider, bodies: &[String]) -> anyhow::Result<usize> {
    let mut deliveries: Vec<&String> = bodies
        .iter()
        .flat_map(|b| std::iter::repeat_n(b, 10))
        .collect();
    // A fixed shuffle (xorshift), so a failure can be replayed.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..deliveries.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        deliveries.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let url = format!(
        "{}/webhooks/{}",
        world.function("billing-webhook"),
        provider.as_str()
    );
    let secret = crate::billing::secret(provider);
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or_default();
    // Providers redeliver whatever was not answered 2xx (a payment before
    // its subscription is a 422 until it is stored; a connection refused
    // under a thousand at once is retried too): so do we, up to five rounds.
    let mut pending: Vec<String> = deliveries.into_iter().cloned().collect();
    let mut answered = 0;
    for _round in 0..5 {
        let mut tasks = tokio::task::JoinSet::new();
        for body in std::mem::take(&mut pending) {
            let request = world
                .http
                .post(&url)
                .header("content-type", "application/json")
                .header(
                    signature::header_name(provider),
                    signature::sign(provider, &secret, now, body.as_bytes()),
                )
                .body(body.clone());
            tasks.spawn(async move {
                let status = match request.send().await {
                    Ok(response) => Some(Reply::read(response).await?.status),
                    Err(_) => None,
                };
                anyhow::Ok((body, status))
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (body, status) = joined??;
            match status {
                Some(200) => answered += 1,
                // Never a 5xx but for an unreachable database: none here.
                Some(status) if status >= 500 => {
                    anyhow::bail!("{}: answered {status} under load", provider.as_str())
                }
                _ => pending.push(body),
            }
        }
        if pending.is_empty() {
            break;
        }
    }
    ensure_eq!(
        pending.len(),
        0,
        "{}: all delivered within five rounds",
        provider.as_str()
    );
    Ok(answered)
}

/// A billing fixture as JSON, to edit.
fn fixture(provider: Provider, name: &str) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&crate::billing::fixture(
        provider, name,
    )?)?)
}

/// The webhook storm, per provider: 50 updates of one subscription (the
/// n-th with n seats, n seconds later) and 50 paid renewals (500 credits
/// each), every one delivered ten times, all 1,000 at once in a shuffled
/// order. In order, the subscription would end in the newest update's state
/// (50 seats) and the owner with 25,000 credits more; so must it here, each
/// event recorded once.
pub async fn a_thousand_shuffled_deliveries_apply_each_event_once(
    world: &World,
) -> anyhow::Result<()> {
    world
        .stack
        .psql(
            "insert into public.billing_credit_prices (provider, price_id, credits, grant_on) values \
             ('stripe', 'price_storm', 500, 'renewal'), ('paddle', 'pri_storm', 500, 'renewal'), \
             ('lemon-squeezy', '77777', 500, 'renewal') \
             on conflict (provider, price_id) do update set credits = excluded.credits, grant_on = excluded.grant_on",
        )
        .await?;
    for provider in [Provider::Stripe, Provider::Paddle, Provider::LemonSqueezy] {
        let account = user_with(world, 0).await?.0;
        let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let sub = format!("sub_storm_{tag}");
        let lemon_sub =
            (900_000_000 + (uuid::Uuid::new_v4().as_u128() % 90_000_000) as u64).to_string();
        let t0 = 1_760_000_000_i64;
        let mut bodies = Vec::new();
        for n in 1..=50_i64 {
            bodies.push(update(provider, n, t0 + n, &account, &sub, &lemon_sub, &tag)?.to_string());
            bodies.push(
                renewal(provider, n, t0 + 100 + n, &account, &sub, &lemon_sub, &tag)?.to_string(),
            );
        }
        ensure_eq!(
            bodies.iter().collect::<HashSet<_>>().len(),
            100,
            "100 distinct events"
        );
        let answered = storm(world, provider, &bodies).await?;
        ensure_eq!(
            answered,
            1_000,
            "{}: every delivery answered 200 in the end",
            provider.as_str()
        );
        let subscription_id = if provider == Provider::LemonSqueezy {
            &lemon_sub
        } else {
            &sub
        };
        let newest = chrono::DateTime::from_timestamp(t0 + 50, 0).context("time")?;
        let state = world
            .stack
            .psql(&format!(
                "select s.status || '|' || i.quantity || '|' || (s.last_event_at = '{newest}') || '|' || \
                 (select count(*) || '|' || sum(p.credits_granted) from public.billing_payments p \
                  where p.account_id = s.account_id) \
                 from public.subscriptions s join public.subscription_items i on i.subscription_id = s.id \
                 where s.id = '{subscription_id}'",
                newest = newest.to_rfc3339()
            ))
            .await?;
        // Lemon Squeezy's invoices do not say how many seats they paid for,
        // so its renewals count the stored quantity, whatever arrived first:
        // its updates keep one seat here (see the README's reliability notes).
        let seats = if provider == Provider::LemonSqueezy {
            1
        } else {
            50
        };
        ensure_eq!(
            state.trim(),
            format!("active|{seats}|true|50|25000"),
            "{}: the newest update's state; 50 renewals recorded once, 500 credits each",
            provider.as_str()
        );
        ensure_eq!(
            balance(world, &account).await?,
            "25000|25000",
            "{}: the balance = the ledger",
            provider.as_str()
        );
    }
    Ok(())
}

/// The n-th update of the storm's subscription.
fn update(
    provider: Provider,
    n: i64,
    at: i64,
    account: &str,
    sub: &str,
    lemon_sub: &str,
    tag: &str,
) -> anyhow::Result<Value> {
    let time = chrono::DateTime::from_timestamp(at, 0)
        .context("time")?
        .format("%Y-%m-%dT%H:%M:%S.000000Z")
        .to_string();
    Ok(match provider {
        Provider::Stripe => {
            let mut v = fixture(provider, "customer.subscription.updated")?;
            v["id"] = json!(format!("evt_storm_{tag}_u{n}"));
            v["created"] = json!(at);
            let o = &mut v["data"]["object"];
            o["id"] = json!(sub);
            o["customer"] = json!(format!("cus_storm_{tag}"));
            o["metadata"] = json!({"account_id": account});
            o["items"]["data"] = json!([{"price": {"id": "price_storm", "recurring": {"interval": "month", "interval_count": 1}},
                                          "quantity": n}]);
            v
        }
        Provider::Paddle => {
            let mut v = fixture(provider, "subscription.updated")?;
            v["event_id"] = json!(format!("evt_storm_{tag}_u{n}"));
            v["occurred_at"] = json!(time);
            let o = &mut v["data"];
            o["id"] = json!(sub);
            o["customer_id"] = json!(format!("ctm_storm_{tag}"));
            o["custom_data"] = json!({"account_id": account});
            o["scheduled_change"] = Value::Null;
            let mut item = o["items"][0].clone();
            item["price"]["id"] = json!("pri_storm");
            item["quantity"] = json!(n);
            o["items"] = json!([item]);
            v
        }
        Provider::LemonSqueezy => {
            let mut v = fixture(provider, "subscription_updated")?;
            v["meta"]["custom_data"] = json!({"account_id": account});
            v["data"]["id"] = json!(lemon_sub);
            let a = &mut v["data"]["attributes"];
            a["updated_at"] = json!(time);
            a["variant_id"] = json!(77777);
            a["customer_id"] = json!(800_000_000_u64);
            a["first_subscription_item"]["quantity"] = json!(1);
            a["renews_at"] = json!(format!("2026-01-{:02}T00:00:00.000000Z", n % 28 + 1));
            a["first_subscription_item"]["subscription_id"] = json!(lemon_sub.parse::<u64>()?);
            v
        }
    })
}

/// The n-th paid renewal of the storm's subscription.
fn renewal(
    provider: Provider,
    n: i64,
    at: i64,
    account: &str,
    sub: &str,
    lemon_sub: &str,
    tag: &str,
) -> anyhow::Result<Value> {
    let time = chrono::DateTime::from_timestamp(at, 0)
        .context("time")?
        .format("%Y-%m-%dT%H:%M:%S.000000Z")
        .to_string();
    Ok(match provider {
        Provider::Stripe => {
            let mut v = fixture(provider, "invoice.paid")?;
            v["id"] = json!(format!("evt_storm_{tag}_p{n}"));
            v["created"] = json!(at);
            let o = &mut v["data"]["object"];
            o["id"] = json!(format!("in_storm_{tag}_{n}"));
            o["customer"] = json!(format!("cus_storm_{tag}"));
            o["parent"]["subscription_details"]["subscription"] = json!(sub);
            o["parent"]["subscription_details"]["metadata"] = json!({"account_id": account});
            let mut line = o["lines"]["data"][0].clone();
            line["pricing"]["price_details"]["price"] = json!("price_storm");
            o["lines"]["data"] = json!([line]);
            v
        }
        Provider::Paddle => {
            let mut v = fixture(provider, "transaction.completed.renewal")?;
            v["event_id"] = json!(format!("evt_storm_{tag}_p{n}"));
            v["occurred_at"] = json!(time);
            let o = &mut v["data"];
            o["id"] = json!(format!("txn_storm_{tag}_{n}"));
            o["subscription_id"] = json!(sub);
            o["customer_id"] = json!(format!("ctm_storm_{tag}"));
            o["custom_data"] = json!({"account_id": account});
            let mut item = o["items"][0].clone();
            item["price"]["id"] = json!("pri_storm");
            o["items"] = json!([item]);
            if let Some(lines) = o["details"]["line_items"].as_array_mut() {
                lines.truncate(1);
                lines[0]["price_id"] = json!("pri_storm");
            }
            v
        }
        Provider::LemonSqueezy => {
            let mut v = fixture(provider, "subscription_payment_success")?;
            v["meta"]["custom_data"] = json!({"account_id": account});
            v["data"]["id"] = json!(format!("{}", 700_000_000 + n));
            let a = &mut v["data"]["attributes"];
            a["updated_at"] = json!(time);
            a["subscription_id"] = json!(lemon_sub.parse::<u64>()?);
            a["customer_id"] = json!(800_000_000_u64);
            v
        }
    })
}

/// Intake spam: 5,000 submissions from one address in a burst (up to 500
/// in flight at once), each with a captcha the stand-in would pass, at an
/// intake allowing 20 per address an hour. Exactly 20 tickets come of it,
/// every other answer is 429 (never a 5xx), and one visitor from another
/// address, posting in the middle of the burst, gets 201.
pub async fn five_thousand_submissions_from_one_address_make_twenty_tickets(
    world: &World,
) -> anyhow::Result<()> {
    const BURST: usize = 5_000;
    const LIMIT: usize = 20;
    const WINDOW: Duration = Duration::from_secs(3600);
    // Generously: about 40 s measured with the load cases two at a time on
    // two shared cores. The hour's windows are aligned to the epoch, so a
    // burst starting in the last two minutes of an hour waits for the next
    // (a longer burst crossing a full hour could get 2 × LIMIT tickets).
    const BURST_TAKES: Duration = Duration::from_secs(120);
    let key = format!("spam-{}", uuid::Uuid::new_v4().simple());
    world
        .stack
        .psql(&format!(
            "with account as (insert into public.accounts (primary_owner_user_id, name, slug) \
             values ('11111111-1111-4111-8111-111111111111', 'E2E {key}', '{key}') returning id) \
             insert into public.ticket_intakes (account_id, intake_key, rate_limit_per_ip, \
             rate_limit_per_account, rate_limit_window_seconds) \
             select id, '{key}', {LIMIT}, 100000, {} from account",
            WINDOW.as_secs()
        ))
        .await?;
    // The suite's captcha timeout is 1.5 s, for the stand-in's `slow`
    // tokens; under this burst on a shared machine the stand-in can take
    // longer (seen once: one of the 20 answered 503).
    let url = format!("{}/tickets", world.function("ticket-intake-load"));
    let submission = |title: &str| {
        json!({
            "intake_key": key,
            "title": title,
            "content": "Spam.",
            "customer_email": "spam@example.com",
            "captcha_token": format!("pass-spam-{}", uuid::Uuid::new_v4().simple()),
        })
    };
    let spam_title = format!("Spam {}", uuid::Uuid::new_v4().simple());
    let n = uuid::Uuid::new_v4().as_bytes()[0];
    let attacker = format!("203.0.113.{n}");
    let visitor = format!("192.0.2.{n}");

    edge_e2e::inside_one_window(WINDOW, BURST_TAKES).await;
    let burst = std::time::Instant::now();
    let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(500));
    let mut tasks = tokio::task::JoinSet::new();
    let mut visitor_answer = None;
    for i in 0..BURST {
        let permit = in_flight.clone().acquire_owned().await?;
        let request = world
            .http
            .post(&url)
            .header("cf-connecting-ip", &attacker)
            .json(&submission(&spam_title));
        tasks.spawn(async move {
            let status = request.send().await?.status().as_u16();
            drop(permit);
            anyhow::Ok(status)
        });
        if i == BURST / 2 {
            // In the thick of it: thousands sent, hundreds in flight.
            let title = format!("Visitor {}", uuid::Uuid::new_v4().simple());
            let started = std::time::Instant::now();
            let reply = Reply::read(
                world
                    .http
                    .post(&url)
                    .header("cf-connecting-ip", &visitor)
                    .json(&submission(&title))
                    .send()
                    .await?,
            )
            .await?;
            visitor_answer = Some((reply, title, started.elapsed()));
        }
    }
    let mut statuses = Vec::with_capacity(BURST);
    while let Some(joined) = tasks.join_next().await {
        statuses.push(joined??);
    }
    statuses.sort_unstable();
    let burst = burst.elapsed();

    let (reply, title, took) = visitor_answer.context("the visitor posted")?;
    reply.expect(201).with_context(|| {
        format!("the visitor from another address gets through mid-burst (after {took:?})")
    })?;
    ensure_eq!(
        (count(&statuses, 201), count(&statuses, 429)),
        (LIMIT, BURST - LIMIT),
        "the address's first {LIMIT} make tickets, the rest are limited (in {burst:?}, \
         one window if within {BURST_TAKES:?}); no 5xx: {:?}",
        statuses
            .iter()
            .filter(|s| **s != 201 && **s != 429)
            .collect::<Vec<_>>()
    );
    let tickets = world
        .stack
        .psql(&format!(
            "select (select count(*) from public.tickets where title = '{spam_title}') || '|' || \
             (select count(*) from public.tickets where title = '{title}')"
        ))
        .await?;
    ensure_eq!(
        tickets.trim(),
        format!("{LIMIT}|1"),
        "tickets of the burst (none past the limit) | the visitor's"
    );
    Ok(())
}
