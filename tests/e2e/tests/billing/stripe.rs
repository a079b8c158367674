//! A Stripe subscription's life, delivered as Stripe sends it.

use super::*;

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
