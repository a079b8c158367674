//! Faults of our own stack while every route is under load (issue 12):
//! PostgREST silent, PostgREST killed and started again, PostgreSQL
//! restarted (fast shutdown). workerd keeps running throughout.
//!
//! Clients must get 2xx, 4xx or 503 with `Retry-After` (never a 500, never
//! a hang past the routes' PostgREST bounds), the database must hold no
//! half-done work afterwards, and every route must answer normally again
//! without workerd being restarted.
//!
//! The kill and restart cases run on a stack of their own
//! ([`Stack::start`] inside the case), so the shared stack the other cases
//! use never sees a fault.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use edge_billing::{event::Provider, signature};
use edge_e2e::{ensure_eq, Reply, World};
use edge_stack::{DemoUser, Stack, StackOptions};
use serde_json::{json, Value};

/// The functions' PostgREST bound in the fault stack and in the silent
/// variants (`POSTGREST_TIMEOUT_MS`).
pub const TIMEOUT: Duration = Duration::from_millis(1500);

/// What a loaded two-core machine may add to a route's bound: workerd,
/// the JWT check, the captcha or email stand-in, the client's own queue.
const MARGIN: Duration = Duration::from_secs(4);

/// How long a client waits before calling a request hung. Far past every
/// bound, so a hang shows as a failure with its route instead of a stuck run.
const HUNG: Duration = Duration::from_secs(30);

/// The seeded `hello.txt` the member may sign (dev/seed.sql).
const SEEDED_ATTACHMENT: &str = "dddddddd-dddd-4ddd-8ddd-dddddddddddd";

/// The e2e variants of each function pointed at a PostgREST that accepts
/// connections and never answers (see `e2e.rs`), by function.
pub const SILENT: [(&str, &str); 4] = [
    ("ticket-intake", "ticket-intake-silent-db"),
    ("send-email", "send-email-silent-db"),
    ("attachment-urls", "attachment-urls-silent-db"),
    ("billing-webhook", "billing-webhook-silent-db"),
];

/// The routes, each with how many PostgREST calls it makes one after
/// another at most (so how many bounds it may wait through).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Tickets,
    Emails,
    Sign,
    Stripe,
}

const ROUTES: [Route; 4] = [Route::Tickets, Route::Emails, Route::Sign, Route::Stripe];

impl Route {
    fn function(self) -> &'static str {
        match self {
            Route::Tickets => "ticket-intake",
            Route::Emails => "send-email",
            Route::Sign => "attachment-urls",
            Route::Stripe => "billing-webhook",
        }
    }

    /// intake_begin + intake_submit; reserve_email + finalize_email (and
    /// the provider, bounded on its own); one read; apply_billing_event.
    fn postgrest_calls(self) -> u32 {
        match self {
            Route::Tickets | Route::Emails => 2,
            Route::Sign | Route::Stripe => 1,
        }
    }

    fn budget(self) -> Duration {
        TIMEOUT * self.postgrest_calls() + MARGIN
    }
}

/// What one request needs, owned, so load tasks can outlive a borrow.
#[derive(Clone)]
struct Target {
    http: reqwest::Client,
    urls: Vec<(Route, String)>,
    member: String,
    sender: String,
    stripe: Stripe,
}

/// The Stripe subscription whose paid renewals the load delivers.
#[derive(Clone)]
struct Stripe {
    account: String,
    sub: String,
    tag: String,
}

/// One request's request and answer.
#[derive(Debug)]
struct Seen {
    route: Route,
    status: Option<u16>,
    retry_after: bool,
    took: Duration,
    error: Option<String>,
}

impl Target {
    fn url(&self, route: Route) -> &str {
        self.urls
            .iter()
            .find(|(r, _)| *r == route)
            .map(|(_, u)| u.as_str())
            .unwrap_or_default()
    }

    /// Sends one request on `route`; `n` makes it distinct. For the
    /// webhook, also the body, to be redelivered when not answered 200.
    async fn send(&self, route: Route, n: u64) -> (Seen, Option<String>) {
        let base = self.url(route);
        let (request, body) = match route {
            Route::Tickets => {
                let ip = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
                let request = self
                    .http
                    .post(format!("{base}/tickets"))
                    .header("cf-connecting-ip", ip)
                    .json(&json!({
                        "intake_key": "acme",
                        "title": format!("Fault load {n}"),
                        "content": "Load under a fault.",
                        "customer_email": "ada@example.com",
                        "captcha_token": format!("pass-fault-{}", uuid::Uuid::new_v4().simple()),
                    }));
                (request, None)
            }
            Route::Emails => (
                self.http
                    .post(format!("{base}/emails"))
                    .bearer_auth(&self.sender)
                    .header("idempotency-key", uuid::Uuid::new_v4().to_string())
                    .json(
                        &json!({"to": "ada@example.com", "subject": "Fault load", "text": "Load."}),
                    ),
                None,
            ),
            Route::Sign => (
                self.http
                    .post(format!("{base}/attachments/sign"))
                    .bearer_auth(&self.member)
                    .json(&json!({ "ids": [SEEDED_ATTACHMENT] })),
                None,
            ),
            Route::Stripe => {
                let body = renewal(&self.stripe, n).to_string();
                (self.webhook(&body), Some(body))
            }
        };
        let (seen, _) = self.observe(route, request).await;
        let redeliver = body.filter(|_| seen.status != Some(200));
        (seen, redeliver)
    }

    fn webhook(&self, body: &str) -> reqwest::RequestBuilder {
        let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or_default();
        self.http
            .post(format!("{}/webhooks/stripe", self.url(Route::Stripe)))
            .header("content-type", "application/json")
            .header(
                signature::header_name(Provider::Stripe),
                signature::sign(
                    Provider::Stripe,
                    &edge_stack::webhook_secret(Provider::Stripe),
                    now,
                    body.as_bytes(),
                ),
            )
            .body(body.to_owned())
    }

    async fn observe(&self, route: Route, request: reqwest::RequestBuilder) -> (Seen, Vec<u8>) {
        let started = Instant::now();
        let answer = tokio::time::timeout(HUNG, async {
            let reply = Reply::read(request.send().await?).await?;
            anyhow::Ok(reply)
        })
        .await;
        let took = started.elapsed();
        match answer {
            Ok(Ok(reply)) => (
                Seen {
                    route,
                    status: Some(reply.status),
                    retry_after: reply.header("retry-after").is_some(),
                    took,
                    error: None,
                },
                reply.body,
            ),
            Ok(Err(e)) => (
                Seen {
                    route,
                    status: None,
                    retry_after: false,
                    took,
                    error: Some(format!("{e:#}")),
                },
                Vec::new(),
            ),
            Err(_) => (
                Seen {
                    route,
                    status: None,
                    retry_after: false,
                    took,
                    error: Some(format!("no answer within {HUNG:?}")),
                },
                Vec::new(),
            ),
        }
    }
}

/// The n-th paid renewal (500 credits) of the load's subscription, a new
/// event and invoice each.
fn renewal(stripe: &Stripe, n: u64) -> Value {
    let mut v: Value = crate::billing::fixture(Provider::Stripe, "invoice.paid")
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    v["id"] = json!(format!("evt_fault_{}_{n}", stripe.tag));
    v["created"] = json!(1_760_000_000 + n);
    let o = &mut v["data"]["object"];
    o["id"] = json!(format!("in_fault_{}_{n}", stripe.tag));
    o["customer"] = json!(format!("cus_fault_{}", stripe.tag));
    o["parent"]["subscription_details"]["subscription"] = json!(stripe.sub);
    o["parent"]["subscription_details"]["metadata"] = json!({"account_id": stripe.account});
    let mut line = o["lines"]["data"][0].clone();
    line["pricing"]["price_details"]["price"] = json!("price_fault");
    o["lines"]["data"] = json!([line]);
    v
}

/// Failures among `seen`: a 5xx other than 503-with-Retry-After, no answer,
/// or an answer slower than its route's bound.
fn misbehaved(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .filter_map(|s| {
            let why = match s.status {
                None => s.error.clone().unwrap_or_default(),
                Some(503) if !s.retry_after => "503 without Retry-After".to_owned(),
                Some(status) if status >= 500 && status != 503 => format!("{status}"),
                _ if s.took > s.route.budget() => {
                    format!("{:?}, over its bound {:?}", s.took, s.route.budget())
                }
                _ => return None,
            };
            Some(format!("{:?}: {why}", s.route))
        })
        .collect()
}

fn tally(seen: &[Seen]) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for s in seen {
        let status = s.status.map_or("error".to_owned(), |c| c.to_string());
        *counts.entry(format!("{:?} {status}", s.route)).or_default() += 1;
    }
    format!("{counts:?}")
}

/// Every route under load: two clients per route, each sending one request
/// after another until `stop`. Returns what they saw and the webhook bodies
/// to redeliver.
struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    redeliver: Arc<Mutex<Vec<String>>>,
    tasks: tokio::task::JoinSet<()>,
}

impl Load {
    fn start(target: &Target, first: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let redeliver = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, route) in ROUTES.iter().chain(ROUTES.iter()).copied().enumerate() {
            let (target, stop, seen, redeliver) = (
                target.clone(),
                stop.clone(),
                seen.clone(),
                redeliver.clone(),
            );
            tasks.spawn(async move {
                let mut n = first + (i as u64) * 1_000_000;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let (one, again) = target.send(route, n).await;
                    seen.lock().expect("lock").push(one);
                    if let Some(body) = again {
                        redeliver.lock().expect("lock").push(body);
                    }
                }
            });
        }
        Self {
            stop,
            seen,
            redeliver,
            tasks,
        }
    }

    async fn finish(mut self) -> (Vec<Seen>, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        while self.tasks.join_next().await.is_some() {}
        let seen = std::mem::take(&mut *self.seen.lock().expect("lock"));
        let redeliver = std::mem::take(&mut *self.redeliver.lock().expect("lock"));
        (seen, redeliver)
    }
}

/// The fault stack: every function, bounded by [`TIMEOUT`], the intake's
/// limits out of the way, a sender with credits, a Stripe subscription.
async fn fault_stack() -> anyhow::Result<(Stack, Target)> {
    let timeout_ms = TIMEOUT.as_millis().to_string();
    let stack = Stack::start(
        StackOptions::ephemeral()
            .functions(ROUTES.map(Route::function))
            .binding("POSTGREST_TIMEOUT_MS", timeout_ms.as_str())
            .binding("EMAIL_TIMEOUT_MS", "5000")
            .binding("CAPTCHA_TIMEOUT_MS", "5000"),
    )
    .await
    .context("the fault stack")?;
    let sender = uuid::Uuid::new_v4().to_string();
    // A user's personal account has the user's id.
    let account = sender.clone();
    stack
        .psql(&format!(
            "update public.ticket_intakes set rate_limit_per_ip = 1000000, rate_limit_per_account = 1000000 \
             where intake_key = 'acme'; \
             insert into public.billing_credit_prices (provider, price_id, credits, grant_on) \
             values ('stripe', 'price_fault', 500, 'renewal'); \
             insert into auth.users (instance_id, id, aud, role, email, raw_user_meta_data, created_at, updated_at) \
             values ('00000000-0000-0000-0000-000000000000', '{sender}', 'authenticated', 'authenticated', \
             'sender@example.com', '{{}}', now(), now()); \
             insert into public.email_sender_settings (user_id, custom_content_allowed, daily_mail_limit, daily_recipient_limit) \
             values ('{sender}', true, 1000000, 1000000); \
             select public.grant_credits('{sender}', 1000000, 'manual_adjustment', 'fault-load')"
        ))
        .await?;
    let mut claims = edge_stack::tokens::user_claims(DemoUser::Member, chrono::Utc::now());
    claims["sub"] = json!(sender);
    claims["email"] = json!("sender@example.com");
    let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let target = Target {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
        urls: ROUTES
            .iter()
            .map(|r| (*r, stack.function_url(r.function()).to_owned()))
            .collect(),
        member: stack.user_token(DemoUser::Member),
        sender: stack.mint(&claims)?,
        stripe: Stripe {
            account,
            sub: format!("sub_fault_{tag}"),
            tag,
        },
    };
    // The subscription first, as Stripe sends it: its renewals apply then.
    let mut created: Value = serde_json::from_str(&crate::billing::fixture(
        Provider::Stripe,
        "customer.subscription.updated",
    )?)?;
    created["id"] = json!(format!("evt_fault_{}_sub", target.stripe.tag));
    created["created"] = json!(1_760_000_000);
    let o = &mut created["data"]["object"];
    o["id"] = json!(target.stripe.sub);
    o["customer"] = json!(format!("cus_fault_{}", target.stripe.tag));
    o["metadata"] = json!({"account_id": target.stripe.account});
    o["items"]["data"] = json!([{"price": {"id": "price_fault", "recurring": {"interval": "month", "interval_count": 1}},
                                  "quantity": 1}]);
    let (seen, body) = target
        .observe(Route::Stripe, target.webhook(&created.to_string()))
        .await;
    ensure_eq!(
        seen.status,
        Some(200),
        "the subscription is stored: {}",
        String::from_utf8_lossy(&body)
    );
    Ok((stack, target))
}

/// Until every route answers as it does with nothing wrong (201, 201, 200,
/// 200), within `within`; how long that took.
async fn every_route_answers(target: &Target, within: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut n = 900_000_000;
    for route in ROUTES {
        let wanted = match route {
            Route::Tickets | Route::Emails => 201,
            Route::Sign | Route::Stripe => 200,
        };
        loop {
            n += 1;
            let (seen, _) = target.send(route, n).await;
            if seen.status == Some(wanted) {
                break;
            }
            if started.elapsed() > within {
                bail!(
                    "{route:?} still answers {:?} {:?} {:?} after {within:?} (workerd not restarted)",
                    seen.status,
                    seen.error,
                    seen.took
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(started.elapsed())
}

/// Providers redeliver what was not answered 200: so do we, after the
/// fault, until each is (the event id makes every delivery count once).
async fn redeliver(target: &Target, bodies: Vec<String>) -> anyhow::Result<()> {
    for body in bodies {
        let (seen, answer) = target.observe(Route::Stripe, target.webhook(&body)).await;
        ensure_eq!(
            seen.status,
            Some(200),
            "a redelivery after the fault: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    Ok(())
}

/// The database's side of the guarantees, in SQL, after a fault: a count
/// of rows breaking each (all must be 0), and the webhook's exactly-once.
async fn invariants(stack: &Stack, stripe: &Stripe) -> anyhow::Result<()> {
    let broken = stack
        .psql(
            "select 'tickets without their message', count(*) from public.tickets t \
               where not exists (select 1 from public.messages m where m.ticket_id = t.id) \
             union all select 'charges without their mail', count(*) from public.credit_transactions c \
               where c.reason = 'email_reserve' \
               and not exists (select 1 from public.user_mails m where m.id::text = c.reference) \
             union all select 'refunds of mails not refunded', count(*) from public.credit_transactions c \
               where c.reason = 'email_refund' and not exists \
               (select 1 from public.user_mails m where m.id::text = c.reference and m.status = 'refunded') \
             union all select 'users whose balance is not their ledger', count(*) from public.profiles p \
               where p.credits <> coalesce((select sum(t.amount) from public.credit_transactions t \
               where t.user_id = p.id), 0) \
             union all select 'events recorded twice', count(*) from (select 1 from public.billing_events \
               group by provider, event_id having count(*) > 1) twice",
        )
        .await?;
    for line in broken.lines().filter(|l| !l.trim().is_empty()) {
        let (what, count) = line.split_once('|').context("a count")?;
        ensure_eq!(count.trim(), "0", "{what}");
    }
    // Each renewal the load delivered (and redelivered) was applied once:
    // one payment and 500 credits per invoice, one ledger row each.
    let once = stack
        .psql(&format!(
            "select (select count(*) from public.billing_events where event_id like 'evt_fault_{tag}_%' \
               and event_id <> 'evt_fault_{tag}_sub' and outcome = 'applied') \
             || '|' || (select count(*) from public.billing_payments where account_id = '{account}') \
             || '|' || (select coalesce(sum(credits_granted), 0) / 500 from public.billing_payments \
               where account_id = '{account}')",
            tag = stripe.tag,
            account = stripe.account,
        ))
        .await?;
    let counts: Vec<&str> = once.trim().split('|').collect();
    ensure_eq!(
        counts
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        1,
        "applied renewals = payments = 500-credit grants: {once}"
    );
    Ok(())
}

/// Load on every route for `before`, then `fault` (which returns once the
/// fault is over), then load for `after`; then the guarantees.
async fn under_load<F>(
    stack: &mut Stack,
    target: &Target,
    first: u64,
    what: &str,
    fault: F,
) -> anyhow::Result<()>
where
    F: for<'s> FnOnce(
        &'s mut Stack,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = anyhow::Result<()>> + 's>,
    >,
{
    let load = Load::start(target, first);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    fault(stack).await.with_context(|| what.to_owned())?;
    let outage = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (seen, bodies) = load.finish().await;
    let bad = misbehaved(&seen);
    if !bad.is_empty() {
        bail!(
            "{what}: {} of {} answers misbehaved ({}), first: {:?}",
            bad.len(),
            seen.len(),
            tally(&seen),
            &bad[..bad.len().min(10)]
        );
    }
    let unavailable = seen.iter().filter(|s| s.status == Some(503)).count();
    eprintln!(
        "faults: {what}: {} answers over {outage:?} of fault, {unavailable} of them 503 ({})",
        seen.len(),
        tally(&seen)
    );
    let recovered = every_route_answers(target, Duration::from_secs(60)).await?;
    eprintln!("faults: {what}: every route answered normally {recovered:?} after");
    redeliver(target, bodies).await?;
    invariants(stack, &target.stripe).await
}

/// PostgREST silent (it accepts connections and never answers): every
/// route, and the deep health check, answers 503 with `Retry-After` once
/// its bound passes, instead of holding the client.
///
/// Seen failing on the code before issue 12 (the function builds of that
/// commit): every request here hung until the client gave up at 30 s.
pub async fn a_silent_postgrest_is_503_within_the_bound_on_every_route(
    world: &World,
) -> anyhow::Result<()> {
    let target = Target {
        http: world.http.clone(),
        urls: ROUTES
            .iter()
            .map(|r| {
                let variant = SILENT
                    .iter()
                    .find(|(f, _)| *f == r.function())
                    .map_or("", |(_, v)| v);
                (*r, world.function(variant).to_owned())
            })
            .collect(),
        member: world.stack.user_token(DemoUser::Member),
        sender: world.stack.user_token(DemoUser::Member),
        stripe: Stripe {
            account: "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa".to_owned(),
            sub: "sub_silent".to_owned(),
            tag: uuid::Uuid::new_v4().simple().to_string(),
        },
    };
    // All at once: each waits out its bounds in parallel.
    let mut all = tokio::task::JoinSet::new();
    for route in ROUTES {
        let one = target.clone();
        all.spawn(async move { one.send(route, 1).await.0 });
        let target = target.clone();
        all.spawn(async move {
            let url = format!("{}/health?deep=1", target.url(route));
            target.observe(route, target.http.get(url)).await.0
        });
    }
    let mut seen = Vec::new();
    while let Some(one) = all.join_next().await {
        seen.push(one?);
    }
    for s in &seen {
        ensure_eq!(
            (s.status, s.retry_after),
            (Some(503), true),
            "{:?} answers 503 with Retry-After ({:?}, {:?})",
            s.route,
            s.error,
            s.took
        );
        if s.took < TIMEOUT || s.took > s.route.budget() {
            bail!(
                "{:?} answered after {:?}: not its bound ({TIMEOUT:?} per PostgREST call)",
                s.route,
                s.took
            );
        }
    }
    Ok(())
}

/// PostgREST killed (SIGKILL) in the middle of a load run on every route,
/// down for two seconds, started again; then PostgreSQL restarted with a
/// fast shutdown under the same load. workerd is never restarted.
///
/// Sizes: two clients per route, one request after another, for about
/// 4 s per fault (some 500 to 1,500 requests in all on two cores).
///
/// Seen failing on the code before issue 12 (the function builds of main
/// c564509): during the PostgREST outage, 39 of 784 answers were
/// send-email's 502 (sent, then finalize_email refused: "recording it
/// failed"), which is now a 503 with `Retry-After` that says the mail was
/// sent. The same code answered 500 where a certain refusal's refund could
/// not be recorded (natively: edge-mail's handler tests).
/// The checks after the fault were seen failing too: deleting one message
/// and adding a credit to one profile just before them gave "tickets
/// without their message: 1 != 0".
pub async fn postgrest_killed_and_postgres_restarted_under_load_keep_every_guarantee(
    _world: &World,
) -> anyhow::Result<()> {
    let (mut stack, target) = fault_stack().await?;
    under_load(
        &mut stack,
        &target,
        0,
        "PostgREST killed and started again",
        |stack| {
            Box::pin(async move {
                stack.kill_postgrest().await;
                tokio::time::sleep(Duration::from_secs(2)).await;
                stack.start_postgrest().await
            })
        },
    )
    .await?;
    under_load(
        &mut stack,
        &target,
        10_000_000,
        "PostgreSQL restarted (fast shutdown)",
        |stack| Box::pin(async move { stack.restart_postgres_fast().await }),
    )
    .await?;
    Ok(())
}
