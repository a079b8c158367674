//! The shared core against the real PostgREST and real RLS: JWT
//! verification of the tokens PostgREST accepts, the two PostgREST modes, and
//! the mapping of real PostgREST errors. Native code, real servers.

use anyhow::{ensure, Context as _};
use edge_auth::{AuthenticatedUser, JwtConfig, Policy, Verifier};
use edge_core::{Method, Request};
use edge_db::{PostgrestConfig, ServiceDb, ServiceKey, UserDb};
use edge_e2e::{ensure_eq, World};
use edge_stack::DemoUser;
use edge_testing::clock::{tokio_sleep, wall_now as now};
use edge_testing::vars;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const ACME: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";

/// Config as a function would read it, pointing at the stack.
fn vars(world: &World) -> vars::Builder {
    vars::supabase(world.stack.postgrest_url())
        .set("SUPABASE_ANON_KEY", &world.stack.anon_key())
        .set("SUPABASE_SERVICE_ROLE_KEY", &world.stack.service_key())
        .set("SUPABASE_JWT_SECRET", world.stack.jwt_secret())
}

struct Core {
    verifier: Verifier,
    postgrest: PostgrestConfig,
    service: ServiceDb,
}

fn core(world: &World) -> anyhow::Result<Core> {
    let owned = vars(world);
    let vars = owned.vars();
    let postgrest = PostgrestConfig::from_vars(&vars, tokio_sleep)?;
    Ok(Core {
        verifier: Verifier::new(
            JwtConfig::from_vars(&vars)?,
            reqwest::Client::new(),
            tokio_sleep,
        ),
        service: ServiceDb::new(&postgrest, &ServiceKey::from_vars(&vars)?),
        postgrest,
    })
}

async fn sign_in(core: &Core, token: &str) -> Result<AuthenticatedUser, edge_core::Error> {
    let req =
        Request::new(Method::Get, "/").with_header("authorization", &format!("Bearer {token}"));
    core.verifier.authenticate(&req, now(), Policy::User).await
}

async fn account_ids(
    rows: impl std::future::Future<Output = Result<Vec<Value>, edge_core::Error>>,
) -> anyhow::Result<BTreeSet<String>> {
    let rows = rows.await?;
    Ok(rows
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect())
}

pub async fn rls_decides_what_each_mode_sees(world: &World) -> anyhow::Result<()> {
    let core = core(world)?;
    let mut every_personal = BTreeSet::new();
    for (user, expected) in [
        (DemoUser::Owner, vec![DemoUser::Owner.id(), ACME]),
        (DemoUser::Member, vec![DemoUser::Member.id(), ACME]),
        (DemoUser::Outsider, vec![DemoUser::Outsider.id()]),
    ] {
        let signed_in = sign_in(&core, &world.stack.user_token(user))
            .await
            .with_context(|| format!("{user:?} token verifies"))?;
        ensure_eq!(signed_in.user_id().to_string(), user.id(), "{user:?} sub");
        let db = UserDb::new(&core.postgrest, &signed_in);
        let seen = account_ids(db.execute(db.from("accounts").select("id"))).await?;
        let expected: BTreeSet<String> = expected.into_iter().map(str::to_owned).collect();
        ensure_eq!(seen, expected, "{user:?} sees exactly their accounts");
        every_personal.insert(user.id().to_owned());
    }

    let all = account_ids(
        core.service
            .execute(core.service.from("accounts").select("id")),
    )
    .await?;
    ensure!(all.contains(ACME), "service sees the team account");
    ensure!(
        all.is_superset(&every_personal),
        "service sees every personal account: {all:?}"
    );

    let outsider = sign_in(&core, &world.stack.user_token(DemoUser::Outsider)).await?;
    let as_outsider = UserDb::new(&core.postgrest, &outsider);
    let memberships: Vec<Value> = as_outsider
        .execute(
            as_outsider
                .from("accounts_memberships")
                .select("user_id")
                .eq("account_id", ACME),
        )
        .await?;
    ensure!(
        memberships.is_empty(),
        "outsider sees no Acme memberships: {memberships:?}"
    );
    Ok(())
}

pub async fn es256_tokens_work_with_the_verifier_and_postgrest(
    world: &World,
) -> anyhow::Result<()> {
    let jwks = format!(
        "{}/auth/v1/.well-known/jwks.json",
        world.stack.auth().context("auth stand-in")?.url()
    );
    let owned = vars(world).set("SUPABASE_JWKS_URL", &jwks);
    let vars = owned.vars();
    let verifier = Verifier::new(
        JwtConfig::from_vars(&vars)?,
        reqwest::Client::new(),
        tokio_sleep,
    );
    let postgrest = PostgrestConfig::from_vars(&vars, tokio_sleep)?;
    let token = world.stack.user_token_es256(DemoUser::Outsider)?;
    let req =
        Request::new(Method::Get, "/").with_header("authorization", &format!("Bearer {token}"));
    let user = verifier.authenticate(&req, now(), Policy::User).await?;
    ensure_eq!(user.user_id().to_string(), DemoUser::Outsider.id(), "sub");
    // PostgREST accepts the same token (it has the key set too): RLS applies.
    let db = UserDb::new(&postgrest, &user);
    let seen = account_ids(db.execute(db.from("accounts").select("id"))).await?;
    ensure_eq!(
        seen,
        BTreeSet::from([DemoUser::Outsider.id().to_owned()]),
        "outsider's accounts"
    );
    Ok(())
}

pub async fn bad_tokens_are_401_before_postgrest(world: &World) -> anyhow::Result<()> {
    let core = core(world)?;
    let owner = DemoUser::Owner;
    let mut claims = edge_stack::tokens::user_claims(owner, chrono_now());
    claims["exp"] = json!(now() - 3600);
    let expired = world.stack.mint(&claims)?;
    let forged = edge_stack::tokens::mint(
        "another-secret-another-secret-another-secret",
        &edge_stack::tokens::user_claims(owner, chrono_now()),
    )?;
    for (what, token) in [
        ("expired", expired),
        ("forged", forged),
        ("service key", world.stack.service_key()),
        ("anon key", world.stack.anon_key()),
        ("garbage", "not.a.jwt".to_owned()),
    ] {
        let err = sign_in(&core, &token)
            .await
            .err()
            .with_context(|| format!("{what} token was accepted"))?;
        ensure_eq!(err.status(), 401, "{what}");
    }
    Ok(())
}

pub async fn postgrest_errors_map_to_clear_statuses(world: &World) -> anyhow::Result<()> {
    let core = core(world)?;
    let owner = sign_in(&core, &world.stack.user_token(DemoUser::Owner)).await?;
    let as_owner = UserDb::new(&core.postgrest, &owner);

    // authenticated has no insert grant on accounts: 42501 -> 403.
    let err = as_owner
        .execute::<Value>(
            as_owner
                .from("accounts")
                .insert(json!({"name": "X"}).to_string()),
        )
        .await
        .err()
        .context("a user inserted an account")?;
    ensure_eq!(err.status(), 403, "insufficient privilege");

    // The slug is unique: 23505 -> 409.
    let duplicate = json!({"name": "Copy", "slug": "acme", "is_personal_account": false,
                           "primary_owner_user_id": DemoUser::Owner.id()});
    let err = core
        .service
        .execute::<Value>(core.service.from("accounts").insert(duplicate.to_string()))
        .await
        .err()
        .context("a duplicate slug was accepted")?;
    ensure_eq!(err.status(), 409, "unique violation");

    // A missing required column: 23502 -> 422.
    let err = core
        .service
        .execute::<Value>(
            core.service
                .from("accounts")
                .insert(json!({"name": null}).to_string()),
        )
        .await
        .err()
        .context("a null name was accepted")?;
    ensure_eq!(err.status(), 422, "not-null violation");

    // A forged JWT reaching PostgREST itself: PGRST301 -> 401.
    let forged = edge_stack::tokens::mint(
        "x".repeat(40).as_str(),
        &edge_stack::tokens::user_claims(DemoUser::Owner, chrono_now()),
    )?;
    let raw = postgrest::Postgrest::new(world.stack.postgrest_url())
        .insert_header("apikey", world.stack.anon_key())
        .from("accounts")
        .auth(forged);
    let err = core
        .service
        .execute::<Value>(raw)
        .await
        .err()
        .context("PostgREST accepted a forged JWT")?;
    ensure_eq!(err.status(), 401, "PostgREST's JWT rejection");
    Ok(())
}

pub async fn postgrest_down_is_503(world: &World) -> anyhow::Result<()> {
    let owned = vars(world).set("POSTGREST_URL", "http://127.0.0.1:9"); // discard port: nothing listens
    let vars = owned.vars();
    let service = ServiceDb::new(
        &PostgrestConfig::from_vars(&vars, tokio_sleep)?,
        &ServiceKey::from_vars(&vars)?,
    );
    let err = service
        .ping()
        .await
        .err()
        .context("ping of a dead PostgREST succeeded")?;
    ensure_eq!(err.status(), 503, "ping");
    let err = service
        .execute::<Value>(service.from("accounts").select("id"))
        .await
        .err()
        .context("query of a dead PostgREST succeeded")?;
    ensure_eq!(err.status(), 503, "query");
    let reply = err.to_response("r");
    ensure!(
        reply.header("retry-after").is_some(),
        "503 carries Retry-After"
    );
    Ok(())
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}
