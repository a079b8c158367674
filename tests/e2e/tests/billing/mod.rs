//! billing-webhook through the real wasm in workerd, the real PostgREST and
//! PostgreSQL. Deliveries are the providers' documented payloads
//! (`crates/billing/fixtures`), signed here with the stack's demo secrets the
//! way each provider signs. Each case renames the fixtures' ids (customer,
//! subscription, order, event) to its own and bills an account of its own,
//! so cases never see each other's rows.

use anyhow::{ensure, Context as _};
use edge_billing::{event::Provider, signature};
use edge_e2e::{ensure_eq, Reply, World};
use serde_json::{json, Value};

mod money;
pub use money::*;

const FUNCTION: &str = "billing-webhook";

pub(crate) fn secret(provider: Provider) -> &'static str {
    match provider {
        Provider::Stripe => edge_stack::STRIPE_WEBHOOK_SECRET,
        Provider::LemonSqueezy => edge_stack::LEMON_SQUEEZY_WEBHOOK_SECRET,
        Provider::Paddle => edge_stack::PADDLE_WEBHOOK_SECRET,
    }
}

fn now() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap_or_default()
}

/// A documented payload from `crates/billing/fixtures/<provider>/<name>.json`.
pub(crate) fn fixture(provider: Provider, name: &str) -> anyhow::Result<String> {
    let path = edge_stack::repo_root()
        .join("crates/billing/fixtures")
        .join(provider.as_str())
        .join(format!("{name}.json"));
    std::fs::read_to_string(&path).with_context(|| format!("fixture {}", path.display()))
}

/// The fixtures bill this account (dev/seed.sql's team account).
const FIXTURE_ACCOUNT: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";

/// Lemon Squeezy's ids in the fixtures (numbers): subscription, customer,
/// order, subscription invoice, order item, subscription item, and the
/// subscription invoices of a free first period and of a plan change.
const LEMON_SQUEEZY_IDS: [&str; 8] = [
    "1843920", "6195731", "5207284", "4380652", "5149487", "3390457", "4371204", "4391177",
];

/// A case's own ids: every customer, subscription, order, invoice and event
/// id in the fixtures gets the case's suffix, and the account is the case's.
#[derive(Clone)]
struct Scope {
    account: String,
    suffix: String,
    /// Lemon Squeezy's ids are numbers; a case's are `base + i`.
    numeric_base: u64,
}

impl Scope {
    async fn new(world: &World) -> anyhow::Result<Self> {
        let uuid = uuid::Uuid::new_v4();
        let numeric_base = 100_000_000 + (uuid.as_u128() % 800_000_000) as u64 * 10;
        Ok(Self {
            account: new_account(world).await?,
            suffix: uuid.simple().to_string()[..10].to_owned(),
            numeric_base,
        })
    }

    /// The case's name for a fixture id (`sub_1S5AcmeProSubscription01`).
    fn id(&self, fixture_id: &str) -> String {
        if let Some(i) = LEMON_SQUEEZY_IDS.iter().position(|id| *id == fixture_id) {
            return (self.numeric_base + i as u64).to_string();
        }
        // Stripe's ids contain "Acme", Paddle's "acme".
        fixture_id
            .replace("Acme", &format!("Acme{}", self.suffix))
            .replace("acme", &format!("acme{}", self.suffix))
    }

    /// A fixture with this case's ids.
    fn load(&self, provider: Provider, name: &str) -> anyhow::Result<Delivery> {
        let mut body = fixture(provider, name)?.replace(FIXTURE_ACCOUNT, &self.account);
        body = match provider {
            Provider::LemonSqueezy => LEMON_SQUEEZY_IDS
                .iter()
                .fold(body, |body, id| body.replace(id, &self.id(id))),
            Provider::Stripe | Provider::Paddle => self.id(&body),
        };
        Ok(Delivery { provider, body })
    }
}

/// A delivery: the body exactly as sent.
#[derive(Clone)]
struct Delivery {
    provider: Provider,
    body: String,
}

impl Delivery {
    /// Edits the JSON (then re-serialises it: the signature covers whatever
    /// bytes are sent).
    fn edit(mut self, change: impl FnOnce(&mut Value)) -> anyhow::Result<Self> {
        let mut value: Value = serde_json::from_str(&self.body)?;
        change(&mut value);
        self.body = serde_json::to_string_pretty(&value)?;
        Ok(self)
    }
}

/// Posts `body` to `function`'s webhook route for `provider`, with
/// `signature` as the signature header when given.
async fn post(
    world: &World,
    function: &str,
    provider: Provider,
    body: &str,
    signature: Option<&str>,
) -> anyhow::Result<Reply> {
    let mut request = world
        .http
        .post(format!(
            "{}/webhooks/{}",
            world.function(function),
            provider.as_str()
        ))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(value) = signature {
        request = request.header(signature::header_name(provider), value);
    }
    Reply::read(request.send().await?).await
}

/// Delivers as the provider would: signed now with the configured secret.
async fn deliver(world: &World, delivery: &Delivery) -> anyhow::Result<Reply> {
    deliver_to(world, FUNCTION, delivery).await
}

async fn deliver_to(world: &World, function: &str, delivery: &Delivery) -> anyhow::Result<Reply> {
    let header = signature::sign(
        delivery.provider,
        secret(delivery.provider),
        now(),
        delivery.body.as_bytes(),
    );
    post(
        world,
        function,
        delivery.provider,
        &delivery.body,
        Some(&header),
    )
    .await
}

/// Delivers and expects a 200 with this outcome (checked against OpenAPI).
async fn expect_outcome(world: &World, delivery: &Delivery, outcome: &str) -> anyhow::Result<()> {
    let reply = deliver(world, delivery).await?;
    ensure_eq!(
        reply.status,
        200,
        "delivery answered {}",
        String::from_utf8_lossy(&reply.body)
    );
    world.openapi.check(
        "POST",
        &format!("/{FUNCTION}/webhooks/{}", delivery.provider.as_str()),
        &reply,
    )?;
    ensure_eq!(reply.json()?["outcome"], json!(outcome), "outcome");
    Ok(())
}

/// A fresh user, whose personal account (same id) is billed; the sign-up
/// trigger gives them a profile, so credits can be granted to them.
async fn new_account(world: &World) -> anyhow::Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    world
        .stack
        .psql(&format!(
            "insert into auth.users (instance_id, id, aud, role, email, raw_user_meta_data, created_at, updated_at) \
             values ('00000000-0000-0000-0000-000000000000', '{id}', 'authenticated', 'authenticated', '{}@example.com', '{{}}', now(), now())",
            &id[..8]
        ))
        .await?;
    Ok(id)
}

/// One row of `sql`'s output (psql -A -t), trimmed.
async fn query(world: &World, sql: &str) -> anyhow::Result<String> {
    Ok(world.stack.psql(sql).await?.trim().to_owned())
}

async fn credits(world: &World, user: &str) -> anyhow::Result<i64> {
    let out = query(
        world,
        &format!("select credits from public.profiles where id = '{user}'"),
    )
    .await?;
    out.parse()
        .with_context(|| format!("credits of {user}: {out:?}"))
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    )
}

/// How many ledger rows exist for `provider` event `event_id`, and their
/// outcome.
async fn recorded(world: &World, provider: Provider, event_id: &str) -> anyhow::Result<String> {
    query(
        world,
        &format!(
            "select count(*) || ':' || coalesce(max(outcome::text), '-') from public.billing_events \
             where provider = '{}' and event_id = '{event_id}'",
            provider.as_str()
        ),
    )
    .await
}

pub async fn bad_signatures_are_400_and_write_nothing(world: &World) -> anyhow::Result<()> {
    let event_id = unique("evt_sig");
    let body =
        json!({"id": event_id, "object": "event", "type": "ping", "created": now()}).to_string();
    // A minute past the 300 s tolerance either way: a second ticking over
    // between signing here and checking in the worker must not let one in.
    let stale = now() - 360;
    let future = now() + 360;
    let stripe = Provider::Stripe;
    let sign = |provider, secret: &str, at, body: &str| {
        signature::sign(provider, secret, at, body.as_bytes())
    };
    let cases: Vec<(&str, Provider, String, Option<String>)> = vec![
        ("stripe: no header", stripe, body.clone(), None),
        (
            "stripe: wrong secret",
            stripe,
            body.clone(),
            Some(sign(stripe, "whsec_wrong", now(), &body)),
        ),
        (
            "stripe: tampered body",
            stripe,
            body.replace("ping", "pong"),
            Some(sign(stripe, secret(stripe), now(), &body)),
        ),
        (
            "stripe: stale timestamp",
            stripe,
            body.clone(),
            Some(sign(stripe, secret(stripe), stale, &body)),
        ),
        (
            "stripe: future timestamp",
            stripe,
            body.clone(),
            Some(sign(stripe, secret(stripe), future, &body)),
        ),
        (
            "stripe: malformed",
            stripe,
            body.clone(),
            Some("t=abc,v1=xyz".to_owned()),
        ),
        (
            "lemon-squeezy: wrong secret",
            Provider::LemonSqueezy,
            body.clone(),
            Some(sign(Provider::LemonSqueezy, "nope", 0, &body)),
        ),
        (
            "lemon-squeezy: tampered",
            Provider::LemonSqueezy,
            format!("{body} "),
            Some(sign(
                Provider::LemonSqueezy,
                secret(Provider::LemonSqueezy),
                0,
                &body,
            )),
        ),
        (
            "paddle: stale",
            Provider::Paddle,
            body.clone(),
            Some(sign(
                Provider::Paddle,
                secret(Provider::Paddle),
                stale,
                &body,
            )),
        ),
        (
            "paddle: stripe's format",
            Provider::Paddle,
            body.clone(),
            Some(sign(stripe, secret(Provider::Paddle), now(), &body)),
        ),
    ];
    for (what, provider, sent, header) in cases {
        let reply = post(world, FUNCTION, provider, &sent, header.as_deref()).await?;
        ensure_eq!(
            reply.status,
            400,
            "{what}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        ensure_eq!(reply.json()?["code"], json!("invalid_signature"), "{what}");
        ensure_eq!(
            reply.json()?["detail"],
            json!("The signature is missing or invalid."),
            "{what}: no detail beyond that"
        );
        world.openapi.check(
            "POST",
            &format!("/{FUNCTION}/webhooks/{}", provider.as_str()),
            &reply,
        )?;
    }
    ensure_eq!(
        recorded(world, stripe, &event_id).await?,
        "0:-",
        "nothing recorded"
    );
    Ok(())
}

/// The credits each fixture price grants, as a deployment would configure
/// them in `billing_credit_prices` (upserted, so the seed's values or another
/// case's do not matter).
async fn configure_credit_prices(world: &World) -> anyhow::Result<()> {
    world
        .stack
        .psql(
            "insert into public.billing_credit_prices (provider, price_id, credits, grant_on) values \
             ('stripe', 'price_credits_100', 100, 'purchase'), \
             ('stripe', 'price_pro_monthly', 500, 'renewal'), \
             ('lemon-squeezy', '22222', 100, 'purchase'), \
             ('lemon-squeezy', '11111', 500, 'renewal'), \
             ('paddle', 'pri_01k4c7credits1000000000000', 100, 'purchase'), \
             ('paddle', 'pri_01k4c7promonthly0000000000', 500, 'renewal') \
             on conflict (provider, price_id) do update set credits = excluded.credits, grant_on = excluded.grant_on",
        )
        .await?;
    Ok(())
}

/// `status|active|cancel_at_period_end|account_id` of a subscription, or "".
async fn subscription(world: &World, id: &str) -> anyhow::Result<String> {
    query(
        world,
        &format!(
            "select status || '|' || active || '|' || cancel_at_period_end || '|' || account_id \
             from public.subscriptions where id = '{id}'"
        ),
    )
    .await
}

/// `variant_id x quantity` of a subscription's items, sorted.
async fn items(world: &World, subscription_id: &str) -> anyhow::Result<String> {
    query(
        world,
        &format!(
            "select coalesce(string_agg(variant_id || 'x' || quantity, ',' order by variant_id), '') \
             from public.subscription_items where subscription_id = '{subscription_id}'"
        ),
    )
    .await
}

/// `status|account_id` of an order, or "".
async fn order(world: &World, id: &str) -> anyhow::Result<String> {
    query(
        world,
        &format!("select status || '|' || account_id from public.orders where id = '{id}'"),
    )
    .await
}

pub async fn a_stripe_subscription_lives_and_ends_in_the_right_rows(
    world: &World,
) -> anyhow::Result<()> {
    configure_credit_prices(world).await?;
    let scope = Scope::new(world).await?;
    let (account, sub) = (&scope.account, scope.id("sub_1S5AcmeProSubscription01"));
    let load = |name| scope.load(Provider::Stripe, name);
    let start = credits(world, account).await?;

    expect_outcome(
        world,
        &load("checkout.session.completed.subscription")?,
        "applied",
    )
    .await?;
    let customer = query(
        world,
        &format!(
            "select customer_id || '|' || email from public.billing_customers \
             where account_id = '{account}' and provider = 'stripe'"
        ),
    )
    .await?;
    ensure_eq!(
        customer,
        format!("{}|owner@example.com", scope.id("cus_T1AcmeOwner0001")),
        "checkout links the customer"
    );

    expect_outcome(world, &load("customer.subscription.created")?, "applied").await?;
    ensure_eq!(
        subscription(world, &sub).await?,
        format!("active|true|false|{account}")
    );
    ensure_eq!(items(world, &sub).await?, "price_pro_monthlyx1");

    // A renewal paid: the plan's 500 credits, to the account's owner.
    expect_outcome(world, &load("invoice.paid")?, "applied").await?;
    ensure_eq!(
        credits(world, account).await?,
        start + 500,
        "renewal credits"
    );
    // A payment failure changes nothing by itself.
    expect_outcome(world, &load("invoice.payment_failed")?, "ignored").await?;

    // Plan change: pro replaced by 3 team seats and a metered item.
    expect_outcome(world, &load("customer.subscription.updated")?, "applied").await?;
    ensure_eq!(
        items(world, &sub).await?,
        "price_api_calls_meteredx1,price_team_monthlyx3",
        "items no longer present are deleted"
    );
    ensure_eq!(
        query(
            world,
            &format!(
                "select type from public.subscription_items \
                 where subscription_id = '{sub}' and variant_id = 'price_api_calls_metered'"
            )
        )
        .await?,
        "metered"
    );

    expect_outcome(world, &load("customer.subscription.deleted")?, "applied").await?;
    ensure_eq!(
        subscription(world, &sub).await?,
        format!("canceled|false|false|{account}")
    );
    ensure_eq!(
        credits(world, account).await?,
        start + 500,
        "nothing else granted"
    );
    Ok(())
}

pub async fn a_lemon_squeezy_subscription_lives_and_ends_in_the_right_rows(
    world: &World,
) -> anyhow::Result<()> {
    configure_credit_prices(world).await?;
    let scope = Scope::new(world).await?;
    let (account, sub) = (&scope.account, scope.id("1843920"));
    let load = |name| scope.load(Provider::LemonSqueezy, name);
    let start = credits(world, account).await?;

    expect_outcome(world, &load("subscription_created")?, "applied").await?;
    ensure_eq!(
        subscription(world, &sub).await?,
        format!("trialing|true|false|{account}")
    );
    ensure_eq!(items(world, &sub).await?, "11111x1");

    // The invoice names no variant: the stored plan's renewal credits.
    expect_outcome(world, &load("subscription_payment_success")?, "applied").await?;
    ensure_eq!(
        credits(world, account).await?,
        start + 500,
        "renewal credits"
    );

    // Plan change to another variant, with 2 seats.
    let changed = load("subscription_updated")?.edit(|v| {
        v["data"]["attributes"]["variant_id"] = json!(33333);
        v["data"]["attributes"]["first_subscription_item"]["quantity"] = json!(2);
    })?;
    expect_outcome(world, &changed, "applied").await?;
    ensure_eq!(
        subscription(world, &sub).await?,
        format!("active|true|false|{account}")
    );
    ensure_eq!(
        items(world, &sub).await?,
        "33333x2",
        "the old variant is gone"
    );

    // Cancelled: runs on to ends_at, then expires.
    expect_outcome(world, &load("subscription_cancelled")?, "applied").await?;
    ensure_eq!(
        subscription(world, &sub).await?,
        format!("canceled|true|true|{account}")
    );
    expect_outcome(world, &load("subscription_expired")?, "applied").await?;
    ensure_eq!(
        subscription(world, &sub).await?,
        format!("expired|false|true|{account}")
    );
    ensure_eq!(credits(world, account).await?, start + 500);
    Ok(())
}

pub async fn a_paddle_subscription_lives_and_ends_in_the_right_rows(
    world: &World,
) -> anyhow::Result<()> {
    configure_credit_prices(world).await?;
    let scope = Scope::new(world).await?;
    let (account, sub) = (&scope.account, scope.id("sub_01k4c7acmepro0000000000000"));
    let load = |name| scope.load(Provider::Paddle, name);
    let start = credits(world, account).await?;

    expect_outcome(world, &load("subscription.created")?, "applied").await?;
    ensure_eq!(
        subscription(world, &sub).await?,
        format!("active|true|false|{account}")
    );
    ensure_eq!(
        items(world, &sub).await?,
        "pri_01k4c7promonthly0000000000x1"
    );

    expect_outcome(
        world,
        &load("transaction.completed.subscription")?,
        "applied",
    )
    .await?;
    ensure_eq!(
        credits(world, account).await?,
        start + 500,
        "renewal credits"
    );
    ensure_eq!(
        order(world, &scope.id("txn_01k4c7acmeprofirst00000000")).await?,
        "",
        "a subscription's transaction is not a one-off order"
    );

    // A plan change (5 seats of another price) with a cancellation scheduled.
    let changed = load("subscription.updated")?.edit(|v| {
        v["data"]["items"][0]["price"]["id"] = json!("pri_01k4c7team0000000000000000");
        v["data"]["items"][0]["quantity"] = json!(5);
    })?;
    expect_outcome(world, &changed, "applied").await?;
    ensure_eq!(
        subscription(world, &sub).await?,
        format!("active|true|true|{account}")
    );
    ensure_eq!(
        items(world, &sub).await?,
        "pri_01k4c7team0000000000000000x5"
    );

    expect_outcome(world, &load("subscription.canceled")?, "applied").await?;
    let state = subscription(world, &sub).await?;
    ensure!(state.starts_with("canceled|false|"), "canceled: {state}");
    ensure_eq!(credits(world, account).await?, start + 500);
    Ok(())
}

pub async fn the_same_event_twice_or_ten_times_at_once_applies_once(
    world: &World,
) -> anyhow::Result<()> {
    configure_credit_prices(world).await?;
    let scope = Scope::new(world).await?;
    let account = &scope.account;
    let start = credits(world, account).await?;

    let created = scope.load(Provider::Stripe, "customer.subscription.created")?;
    expect_outcome(world, &created, "applied").await?;
    expect_outcome(world, &created, "duplicate").await?;

    // Ten simultaneous deliveries of one paid invoice.
    let paid = scope.load(Provider::Stripe, "invoice.paid")?;
    let replies = futures_util::future::join_all((0..10).map(|_| deliver(world, &paid))).await;
    let mut outcomes = Vec::new();
    for reply in replies {
        let reply = reply?;
        ensure_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        outcomes.push(
            reply.json()?["outcome"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    outcomes.sort();
    let applied = outcomes.iter().filter(|o| *o == "applied").count();
    ensure_eq!(applied, 1, "outcomes: {outcomes:?}");
    ensure!(
        outcomes.iter().all(|o| o == "applied" || o == "duplicate"),
        "outcomes: {outcomes:?}"
    );
    ensure_eq!(credits(world, account).await?, start + 500, "granted once");
    let event = scope.id("evt_1S5AcmeInvoicePaid00001");
    ensure_eq!(
        recorded(world, Provider::Stripe, &event).await?,
        "1:applied"
    );
    Ok(())
}

pub async fn events_out_of_order_end_in_the_newest_state(world: &World) -> anyhow::Result<()> {
    // Stripe: the plan change arrives before the creation.
    let scope = Scope::new(world).await?;
    let sub = scope.id("sub_1S5AcmeProSubscription01");
    expect_outcome(
        world,
        &scope.load(Provider::Stripe, "customer.subscription.updated")?,
        "applied",
    )
    .await?;
    expect_outcome(
        world,
        &scope.load(Provider::Stripe, "customer.subscription.created")?,
        "stale",
    )
    .await?;
    ensure_eq!(
        items(world, &sub).await?,
        "price_api_calls_meteredx1,price_team_monthlyx3",
        "the older event changed nothing"
    );
    // ...and the cancellation before both of the rest.
    expect_outcome(
        world,
        &scope.load(Provider::Stripe, "customer.subscription.deleted")?,
        "applied",
    )
    .await?;
    expect_outcome(
        world,
        &scope.load(Provider::Stripe, "customer.subscription.updated")?,
        "duplicate",
    )
    .await?;
    ensure!(subscription(world, &sub)
        .await?
        .starts_with("canceled|false|"));

    // Lemon Squeezy: expired first, then the rest of the history.
    let scope = Scope::new(world).await?;
    let sub = scope.id("1843920");
    for (name, outcome) in [
        ("subscription_expired", "applied"),
        ("subscription_created", "stale"),
        ("subscription_cancelled", "stale"),
        ("subscription_updated", "stale"),
    ] {
        expect_outcome(world, &scope.load(Provider::LemonSqueezy, name)?, outcome).await?;
    }
    ensure!(subscription(world, &sub)
        .await?
        .starts_with("expired|false|"));

    // Paddle: canceled, then the scheduled cancellation and the creation.
    let scope = Scope::new(world).await?;
    let sub = scope.id("sub_01k4c7acmepro0000000000000");
    for (name, outcome) in [
        ("subscription.canceled", "applied"),
        ("subscription.updated", "stale"),
        ("subscription.created", "stale"),
    ] {
        expect_outcome(world, &scope.load(Provider::Paddle, name)?, outcome).await?;
    }
    ensure!(subscription(world, &sub)
        .await?
        .starts_with("canceled|false|"));
    Ok(())
}

pub async fn credit_packs_grant_credits_once_even_when_redelivered(
    world: &World,
) -> anyhow::Result<()> {
    configure_credit_prices(world).await?;
    // Each provider: a paid order for 2 (Stripe, Paddle) or 1 (Lemon Squeezy)
    // packs of 100 credits, delivered three times.
    for (provider, name, order_id, packs) in [
        (
            Provider::Stripe,
            "checkout.session.completed.payment",
            "cs_test_a1AcmeCreditsCheckout0001",
            2,
        ),
        (Provider::LemonSqueezy, "order_created", "5207284", 1),
        (
            Provider::Paddle,
            "transaction.completed.one-off",
            "txn_01k4c7acmecredits000000000",
            2,
        ),
    ] {
        let scope = Scope::new(world).await?;
        let start = credits(world, &scope.account).await?;
        let delivery = scope.load(provider, name)?;
        expect_outcome(world, &delivery, "applied").await?;
        expect_outcome(world, &delivery, "duplicate").await?;
        expect_outcome(world, &delivery, "duplicate").await?;
        let what = provider.as_str();
        ensure_eq!(
            credits(world, &scope.account).await?,
            start + 100 * packs,
            "{what}"
        );
        ensure_eq!(
            order(world, &scope.id(order_id)).await?,
            format!("succeeded|{}", scope.account),
            "{what}"
        );
    }

    // Stripe's delayed payment methods: the order is pending until
    // async_payment_succeeded, which grants once; a failed one grants nothing.
    let scope = Scope::new(world).await?;
    let session = scope.id("cs_test_a1AcmeCreditsBankDebit0001");
    let start = credits(world, &scope.account).await?;
    let pending = scope
        .load(Provider::Stripe, "checkout.session.async_payment_succeeded")?
        .edit(|v| {
            v["type"] = json!("checkout.session.completed");
            v["id"] = json!(format!("evt_pending_{}", scope.suffix));
            v["created"] = json!(v["created"].as_i64().unwrap_or_default() - 3600);
            v["data"]["object"]["payment_status"] = json!("unpaid");
        })?;
    expect_outcome(world, &pending, "applied").await?;
    ensure_eq!(
        order(world, &session).await?,
        format!("pending|{}", scope.account)
    );
    ensure_eq!(
        credits(world, &scope.account).await?,
        start,
        "nothing while pending"
    );
    let succeeded = scope.load(Provider::Stripe, "checkout.session.async_payment_succeeded")?;
    expect_outcome(world, &succeeded, "applied").await?;
    expect_outcome(world, &succeeded, "duplicate").await?;
    ensure_eq!(
        order(world, &session).await?,
        format!("succeeded|{}", scope.account)
    );
    ensure_eq!(credits(world, &scope.account).await?, start + 100);

    let scope = Scope::new(world).await?;
    let start = credits(world, &scope.account).await?;
    expect_outcome(
        world,
        &scope.load(Provider::Stripe, "checkout.session.async_payment_failed")?,
        "applied",
    )
    .await?;
    ensure_eq!(
        order(world, &scope.id("cs_test_a1AcmeCreditsBankDebit0001")).await?,
        format!("failed|{}", scope.account)
    );
    ensure_eq!(
        credits(world, &scope.account).await?,
        start,
        "a failed payment grants nothing"
    );
    Ok(())
}

pub async fn with_the_database_down_it_is_503_then_the_retry_applies_once(
    world: &World,
) -> anyhow::Result<()> {
    let scope = Scope::new(world).await?;
    let delivery = scope.load(Provider::Paddle, "subscription.created")?;
    let reply = deliver_to(world, "billing-webhook-nodb", &delivery).await?;
    ensure_eq!(
        reply.status,
        503,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    ensure!(reply.header("retry-after").is_some(), "Retry-After");
    world
        .openapi
        .check("POST", "/billing-webhook/webhooks/paddle", &reply)?;
    let event = scope.id("evt_01k4c7acmeprocreated000000");
    ensure_eq!(
        recorded(world, Provider::Paddle, &event).await?,
        "0:-",
        "nothing recorded"
    );

    // The provider retries once the database is back.
    expect_outcome(world, &delivery, "applied").await?;
    expect_outcome(world, &delivery, "duplicate").await?;
    ensure_eq!(
        recorded(world, Provider::Paddle, &event).await?,
        "1:applied"
    );
    let sub = scope.id("sub_01k4c7acmepro0000000000000");
    ensure!(subscription(world, &sub).await?.starts_with("active|true|"));
    Ok(())
}

pub async fn unknown_events_are_recorded_and_ignored(world: &World) -> anyhow::Result<()> {
    let scope = Scope::new(world).await?;
    let delivery = scope
        .load(Provider::Stripe, "customer.subscription.created")?
        .edit(|v| v["type"] = json!("customer.tax_id.created"))?;
    expect_outcome(world, &delivery, "ignored").await?;
    expect_outcome(world, &delivery, "duplicate").await?;
    let event = scope.id("evt_1S5AcmeSubCreated00001");
    ensure_eq!(
        recorded(world, Provider::Stripe, &event).await?,
        "1:ignored"
    );
    ensure_eq!(
        subscription(world, &scope.id("sub_1S5AcmeProSubscription01")).await?,
        ""
    );
    Ok(())
}

pub async fn an_event_that_cannot_be_applied_yet_is_422_then_retried(
    world: &World,
) -> anyhow::Result<()> {
    // No account in the subscription's metadata and no customer linked yet:
    // it cannot be applied, is recorded as failed, and the provider is told
    // so (non-2xx: it will redeliver).
    let scope = Scope::new(world).await?;
    let sub = scope.id("sub_1S5AcmeProSubscription01");
    let created = scope
        .load(Provider::Stripe, "customer.subscription.created")?
        .edit(|v| v["data"]["object"]["metadata"] = json!({}))?;
    let reply = deliver(world, &created).await?;
    ensure_eq!(
        reply.status,
        422,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    world
        .openapi
        .check("POST", "/billing-webhook/webhooks/stripe", &reply)?;
    let detail = reply.json()?["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    ensure!(
        detail.contains(&scope.id("cus_T1AcmeOwner0001")),
        "detail names the customer: {detail}"
    );
    let event = scope.id("evt_1S5AcmeSubCreated00001");
    ensure_eq!(recorded(world, Provider::Stripe, &event).await?, "1:failed");
    ensure_eq!(subscription(world, &sub).await?, "", "nothing applied");

    // The checkout links the customer to the account; the redelivery applies.
    expect_outcome(
        world,
        &scope.load(Provider::Stripe, "checkout.session.completed.subscription")?,
        "applied",
    )
    .await?;
    expect_outcome(world, &created, "applied").await?;
    ensure_eq!(
        recorded(world, Provider::Stripe, &event).await?,
        "1:applied"
    );
    ensure_eq!(
        subscription(world, &sub).await?,
        format!("active|true|false|{}", scope.account)
    );

    // A verified body that is not JSON is a 400, and nothing is recorded.
    let garbage = Delivery {
        provider: Provider::Stripe,
        body: "not json".to_owned(),
    };
    let reply = deliver(world, &garbage).await?;
    ensure_eq!(
        reply.status,
        400,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    ensure_eq!(reply.json()?["code"], json!("bad_request"));
    Ok(())
}

pub async fn account_members_read_billing_rows_others_do_not(world: &World) -> anyhow::Result<()> {
    let scope = Scope::new(world).await?;
    expect_outcome(
        world,
        &scope.load(Provider::Paddle, "subscription.created")?,
        "applied",
    )
    .await?;
    let sub = scope.id("sub_01k4c7acmepro0000000000000");

    let owner = {
        let mut claims =
            edge_stack::tokens::user_claims(edge_stack::DemoUser::Member, chrono::Utc::now());
        claims["sub"] = json!(scope.account);
        world.stack.mint(&claims)?
    };
    let outsider = world.stack.user_token(edge_stack::DemoUser::Outsider);
    let read = |token: String, table: &'static str, filter: String| {
        let url = format!("{}/{table}?{filter}", world.stack.postgrest_url());
        let anon = world.stack.anon_key();
        async move {
            let response = world
                .http
                .get(url)
                .header("apikey", anon)
                .bearer_auth(token)
                .send()
                .await?;
            let status = response.status().as_u16();
            let rows: Value = response.json().await?;
            anyhow::Ok((status, rows.as_array().map(Vec::len).unwrap_or_default()))
        }
    };
    ensure_eq!(
        read(owner.clone(), "subscriptions", format!("id=eq.{sub}")).await?,
        (200, 1),
        "the owner"
    );
    ensure_eq!(
        read(
            owner.clone(),
            "subscription_items",
            format!("subscription_id=eq.{sub}")
        )
        .await?,
        (200, 1)
    );
    ensure_eq!(
        read(outsider.clone(), "subscriptions", format!("id=eq.{sub}")).await?,
        (200, 0),
        "an outsider"
    );
    ensure_eq!(
        read(
            outsider,
            "subscription_items",
            format!("subscription_id=eq.{sub}")
        )
        .await?,
        (200, 0)
    );
    let (status, _) = read(owner, "billing_events", "limit=1".to_owned()).await?;
    ensure!(
        status == 401 || status == 403,
        "the ledger is service-only: {status}"
    );
    Ok(())
}
