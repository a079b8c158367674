//! The credit policy end to end (README, "Credits: the credit policy"): the
//! providers' payloads for a trial, a renewal, a plan change with
//! prorations, a one-time purchase, its refunds, and a dispute or
//! chargeback, through the wasm in workerd, PostgREST and PostgreSQL, with
//! the balance, the ledger and the payment rows checked after each step.

use anyhow::Context as _;
use edge_billing::event::Provider;
use edge_e2e::{ensure_eq, World};

use super::{configure_credit_prices, credits, expect_outcome, query, Scope};

/// The balance of the case's account owner, checked against their ledger.
async fn balance(world: &World, user: &str) -> anyhow::Result<i64> {
    let credits = credits(world, user).await?;
    let ledger = query(
        world,
        &format!("select coalesce(sum(amount), 0) from public.credit_transactions where user_id = '{user}'"),
    )
    .await?;
    ensure_eq!(ledger, credits.to_string(), "the balance equals the ledger");
    Ok(credits)
}

/// `amount|credits_granted|credits_taken_back|amount_refunded|amount_disputed`
/// of a recorded payment, or "".
async fn payment(world: &World, provider: Provider, reference: &str) -> anyhow::Result<String> {
    query(
        world,
        &format!(
            "select amount || '|' || credits_granted || '|' || credits_taken_back || '|' \
             || amount_refunded || '|' || amount_disputed from public.billing_payments \
             where provider = '{}' and reference = '{reference}'",
            provider.as_str()
        ),
    )
    .await
}

/// The plan a Stripe plan change moves to, worth more than the one it left:
/// granting its credits for the prorated bill would show.
async fn configure_team_plan(world: &World) -> anyhow::Result<()> {
    world
        .stack
        .psql(
            "insert into public.billing_credit_prices (provider, price_id, credits, grant_on) values \
             ('stripe', 'price_team_monthly', 1000, 'renewal') \
             on conflict (provider, price_id) do update set credits = excluded.credits, grant_on = excluded.grant_on",
        )
        .await?;
    Ok(())
}

/// Stripe, in each API version the fixtures hold: a trial's $0 invoice, a
/// renewal, a plan change with two proration lines, a pack bought and
/// refunded (a quarter, then the rest, as refund and charge events), and
/// the renewal disputed, then won. Before basil the invoice names its
/// payment intent; from basil on `invoice_payment.paid` links them.
pub async fn stripe_credits_follow_the_money_in_every_api_version(
    world: &World,
) -> anyhow::Result<()> {
    configure_credit_prices(world).await?;
    configure_team_plan(world).await?;
    for version in [
        "2024-09-30.acacia/",
        "",
        "2026-02-25.clover/",
        "2026-07-29.dahlia/",
    ] {
        let scope = Scope::new(world).await?;
        let account = scope.account.clone();
        let load = |name: &str| scope.load(Provider::Stripe, &format!("{version}{name}"));
        let basil = |name: &str| scope.load(Provider::Stripe, name);
        let what = if version.is_empty() {
            "2025-03-31.basil"
        } else {
            version
        };
        let start = balance(world, &account).await?;

        expect_outcome(
            world,
            &basil("checkout.session.completed.subscription")?,
            "applied",
        )
        .await?;
        expect_outcome(world, &load("invoice.paid.trial")?, "applied").await?;
        ensure_eq!(
            balance(world, &account).await?,
            start,
            "{what}: a trial's $0 invoice grants nothing"
        );
        ensure_eq!(
            payment(
                world,
                Provider::Stripe,
                &scope.id("in_1S5AcmeTrialInvoice0001")
            )
            .await?,
            "0|0|0|0|0",
            "{what}: recorded, granting nothing"
        );

        expect_outcome(world, &load("invoice.paid")?, "applied").await?;
        ensure_eq!(
            balance(world, &account).await?,
            start + 500,
            "{what}: a renewal grants the plan's 500"
        );

        expect_outcome(world, &load("invoice.paid.plan_change")?, "applied").await?;
        ensure_eq!(
            balance(world, &account).await?,
            start + 500,
            "{what}: the plan change's proration lines grant nothing (3 seats of the new plan would be 3000)"
        );

        // The pack: 2 x 100 credits for 2000.
        expect_outcome(
            world,
            &basil("checkout.session.completed.payment")?,
            "applied",
        )
        .await?;
        ensure_eq!(
            balance(world, &account).await?,
            start + 700,
            "{what}: the pack's 200"
        );
        if !version.starts_with("2024") {
            expect_outcome(world, &load("refund.created")?, "applied").await?;
            ensure_eq!(
                balance(world, &account).await?,
                start + 650,
                "{what}: a quarter refunded takes back a quarter"
            );
        }
        expect_outcome(world, &load("charge.refunded.partial")?, "applied").await?;
        ensure_eq!(
            balance(world, &account).await?,
            start + 650,
            "{what}: the charge's running total of the same quarter takes it once"
        );
        expect_outcome(world, &load("charge.refunded.full")?, "applied").await?;
        ensure_eq!(
            balance(world, &account).await?,
            start + 500,
            "{what}: the full refund takes the rest"
        );
        ensure_eq!(
            payment(
                world,
                Provider::Stripe,
                &scope.id("cs_test_a1AcmeCreditsCheckout0001")
            )
            .await?,
            "2000|200|200|2000|0",
            "{what}: the order's payment shows it"
        );
        ensure_eq!(
            query(
                world,
                &format!(
                    "select amount_refunded from public.orders where id = '{}'",
                    scope.id("cs_test_a1AcmeCreditsCheckout0001")
                )
            )
            .await?,
            "2000",
            "{what}: and the order"
        );

        // The renewal disputed: from basil on, only invoice_payment.paid
        // says which payment intent paid it.
        expect_outcome(world, &load("charge.dispute.created")?, "applied").await?;
        if !version.starts_with("2024") {
            ensure_eq!(
                balance(world, &account).await?,
                start + 500,
                "{what}: a dispute of a payment not linked yet waits"
            );
            expect_outcome(world, &load("invoice_payment.paid")?, "applied").await?;
        }
        ensure_eq!(
            balance(world, &account).await?,
            start,
            "{what}: the disputed renewal's 500 are taken back"
        );
        expect_outcome(world, &load("charge.dispute.closed.won")?, "applied").await?;
        ensure_eq!(
            balance(world, &account).await?,
            start + 500,
            "{what}: a dispute won restores them"
        );
        let reasons = query(
            world,
            &format!(
                "select string_agg(reason || ' ' || amount, ', ' order by created_at, reason) \
                 from public.credit_transactions where user_id = '{account}' and reason <> 'signup_grant'"
            ),
        )
        .await
        .context("ledger")?;
        ensure_eq!(
            reasons,
            "renewal 500, purchase 200, billing_reversal -50, billing_reversal -150, \
             billing_reversal -500, billing_restore 500",
            "{what}: every change is a ledger row of its own"
        );
    }
    Ok(())
}

/// Paddle: a trial's $0 transaction, the first period, a prorated upgrade, a
/// renewal, a pack refunded in part (pending, then approved), the first
/// period refunded in full, and the renewal charged back, then reversed.
pub async fn paddle_credits_follow_the_money(world: &World) -> anyhow::Result<()> {
    configure_credit_prices(world).await?;
    world
        .stack
        .psql(
            "insert into public.billing_credit_prices (provider, price_id, credits, grant_on) values \
             ('paddle', 'pri_01k4c7busmonthly0000000000', 1000, 'renewal') \
             on conflict (provider, price_id) do update set credits = excluded.credits, grant_on = excluded.grant_on",
        )
        .await?;
    let scope = Scope::new(world).await?;
    let account = scope.account.clone();
    let load = |name: &str| scope.load(Provider::Paddle, name);
    let start = balance(world, &account).await?;

    expect_outcome(world, &load("subscription.created")?, "applied").await?;
    expect_outcome(world, &load("transaction.completed.trial")?, "applied").await?;
    ensure_eq!(
        balance(world, &account).await?,
        start,
        "a $0 trial transaction grants nothing"
    );
    expect_outcome(
        world,
        &load("transaction.completed.subscription")?,
        "applied",
    )
    .await?;
    ensure_eq!(
        balance(world, &account).await?,
        start + 500,
        "the first period grants the plan's 500"
    );
    expect_outcome(world, &load("transaction.completed.upgrade")?, "applied").await?;
    ensure_eq!(
        balance(world, &account).await?,
        start + 500,
        "a prorated upgrade (origin subscription_update) grants nothing; a period of the new plan would be 1000"
    );
    expect_outcome(world, &load("transaction.completed.renewal")?, "applied").await?;
    ensure_eq!(
        balance(world, &account).await?,
        start + 1000,
        "a renewal grants 500"
    );

    expect_outcome(world, &load("transaction.completed.one-off")?, "applied").await?;
    ensure_eq!(
        balance(world, &account).await?,
        start + 1200,
        "2 packs of 100"
    );
    expect_outcome(
        world,
        &load("adjustment.created.refund-partial-pending")?,
        "applied",
    )
    .await?;
    ensure_eq!(
        balance(world, &account).await?,
        start + 1200,
        "a refund awaiting approval takes nothing"
    );
    expect_outcome(
        world,
        &load("adjustment.updated.refund-partial-approved")?,
        "applied",
    )
    .await?;
    ensure_eq!(
        balance(world, &account).await?,
        start + 1100,
        "approved, half the order takes back half"
    );
    ensure_eq!(
        payment(
            world,
            Provider::Paddle,
            &scope.id("txn_01k4c7acmecredits000000000")
        )
        .await?,
        "2000|200|100|1000|0"
    );

    expect_outcome(
        world,
        &load("adjustment.updated.refund-full-approved")?,
        "applied",
    )
    .await?;
    ensure_eq!(
        balance(world, &account).await?,
        start + 600,
        "the first period refunded in full"
    );

    expect_outcome(world, &load("adjustment.created.chargeback")?, "applied").await?;
    ensure_eq!(
        balance(world, &account).await?,
        start + 100,
        "a chargeback of the renewal"
    );
    ensure_eq!(
        payment(
            world,
            Provider::Paddle,
            &scope.id("txn_01k7acmeprorenewal00000000")
        )
        .await?,
        "2900|500|500|0|2900"
    );
    expect_outcome(
        world,
        &load("adjustment.created.chargeback-reverse")?,
        "applied",
    )
    .await?;
    ensure_eq!(
        balance(world, &account).await?,
        start + 600,
        "its reversal restores the 500"
    );
    Ok(())
}

/// Lemon Squeezy: a trial's $0 first invoice, a renewal, a plan change's
/// invoice, a pack refunded in part then in full, and the renewal refunded.
/// (Lemon Squeezy sends no dispute events.)
pub async fn lemon_squeezy_credits_follow_the_money(world: &World) -> anyhow::Result<()> {
    configure_credit_prices(world).await?;
    let scope = Scope::new(world).await?;
    let account = scope.account.clone();
    let load = |name: &str| scope.load(Provider::LemonSqueezy, name);
    let start = balance(world, &account).await?;

    expect_outcome(world, &load("subscription_created")?, "applied").await?;
    expect_outcome(
        world,
        &load("subscription_payment_success.free")?,
        "applied",
    )
    .await?;
    ensure_eq!(
        balance(world, &account).await?,
        start,
        "a $0 first invoice grants nothing"
    );
    expect_outcome(world, &load("subscription_payment_success")?, "applied").await?;
    ensure_eq!(
        balance(world, &account).await?,
        start + 500,
        "a renewal grants the plan's 500"
    );
    expect_outcome(
        world,
        &load("subscription_payment_success.updated")?,
        "applied",
    )
    .await?;
    ensure_eq!(
        balance(world, &account).await?,
        start + 500,
        "a plan change's invoice (billing_reason updated) grants nothing"
    );

    expect_outcome(world, &load("order_created")?, "applied").await?;
    ensure_eq!(
        balance(world, &account).await?,
        start + 600,
        "a pack of 100"
    );
    expect_outcome(world, &load("order_refunded.partial")?, "applied").await?;
    ensure_eq!(
        balance(world, &account).await?,
        start + 560,
        "400 of 1000 refunded takes back 40"
    );
    expect_outcome(world, &load("order_refunded.full")?, "applied").await?;
    ensure_eq!(
        balance(world, &account).await?,
        start + 500,
        "the rest refunded takes the rest"
    );
    ensure_eq!(
        payment(world, Provider::LemonSqueezy, &scope.id("5207284")).await?,
        "1000|100|100|1000|0"
    );

    expect_outcome(world, &load("subscription_payment_refunded")?, "applied").await?;
    ensure_eq!(
        balance(world, &account).await?,
        start,
        "the renewal refunded takes back its 500"
    );
    Ok(())
}
