//! Who reads the billing rows: the account's members, nobody else.

use super::*;

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
