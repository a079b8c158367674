//! A Paddle subscription's life, delivered as Paddle sends it.

use super::*;

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
