//! A Lemon Squeezy subscription's life, delivered as Lemon Squeezy sends it.

use super::*;

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
