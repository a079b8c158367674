//! How deliveries are applied: exactly once however often and in whatever
//! order they come, redelivered after the database was down, unknown events
//! recorded and ignored, events that cannot be applied yet retried.

use super::*;

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
        reply.expect(200)?;
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
    reply.expect(503)?;
    ensure!(reply.header("retry-after").is_some(), "Retry-After");
    reply.documented(&world.openapi, "POST", &route(Provider::Paddle))?;
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
    reply
        .expect(422)?
        .documented(&world.openapi, "POST", &route(Provider::Stripe))?;
    let detail = reply.detail()?;
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
    reply.problem(400, "bad_request")?;
    Ok(())
}
