//! billing-webhook through the real wasm in workerd, the real PostgREST and
//! PostgreSQL. Deliveries are the providers' documented payloads
//! (`crates/billing/fixtures`), signed here with the stack's demo secrets the
//! way each provider signs. Each case renames the fixtures' ids (customer,
//! subscription, order, event) to its own and bills an account of its own,
//! so cases never see each other's rows.

use anyhow::{ensure, Context as _};
use edge_billing::{event::Provider, signature};
use edge_e2e::{ensure_eq, unique, Reply, World};
use serde_json::{json, Value};

mod access;
mod delivery;
mod lemon_squeezy;
mod money;
mod paddle;
mod signatures;
mod stripe;

pub use access::*;
pub use delivery::*;
pub use lemon_squeezy::*;
pub use money::*;
pub use paddle::*;
pub use signatures::*;
pub use stripe::*;

const FUNCTION: &str = "billing-webhook";

/// `provider`'s webhook route in openapi.yaml (every variant's too).
fn route(provider: Provider) -> String {
    format!("/{FUNCTION}/webhooks/{}", provider.as_str())
}

/// The secret the stack configures for `provider`, which signs its deliveries.
pub(crate) fn secret(provider: Provider) -> String {
    edge_stack::webhook_secret(provider)
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
    let mut call = world
        .post(function, &format!("/webhooks/{}", provider.as_str()))
        .header("content-type", "application/json")
        .body(body);
    if let Some(value) = signature {
        call = call.header(signature::header_name(provider), value);
    }
    call.send().await
}

/// Delivers as the provider would: signed now with the configured secret.
async fn deliver(world: &World, delivery: &Delivery) -> anyhow::Result<Reply> {
    deliver_to(world, FUNCTION, delivery).await
}

async fn deliver_to(world: &World, function: &str, delivery: &Delivery) -> anyhow::Result<Reply> {
    let header = signature::sign(
        delivery.provider,
        &secret(delivery.provider),
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
    reply.expect(200).context("delivery answered")?.documented(
        &world.openapi,
        "POST",
        &route(delivery.provider),
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
