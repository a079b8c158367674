//! Demo JWTs shaped like the ones Supabase hands out, signed with the
//! well-known local demo secret.
//!
//! PostgREST and the functions only ever see HS256 tokens here, so a
//! developer or a test can act as anon, as `service_role`, or as one of the
//! three seeded users without a GoTrue server. The claim sets copy what
//! Supabase puts in its API keys and access tokens, so code that reads
//! `role`, `sub`, `aud` or `session_id` behaves as it will in production.
//! [`mint`] signs any claim set, for tests that need expired or odd tokens.
//!
//! Besides the HS256 secret the stack has two asymmetric signing keys, as a
//! project with Supabase's JWT signing keys does: ES256 and RS256, both
//! fixed (local only, like the demo secret) so runs are reproducible and no
//! RSA key is generated at start. Every user token minted here is
//! remembered ([`minted`]), so the end-to-end harness can check that none
//! of them ever comes back in a log line or an answer.

use std::{
    fmt,
    str::FromStr,
    sync::{Mutex, OnceLock, PoisonError},
};

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use jwt_compact::{
    alg::{Es256, Hs256, Hs256Key, Rsa, RsaPrivateKey, SigningKey as _},
    jwk::JsonWebKey,
    prelude::*,
};
use serde::Serialize;
use serde_json::{json, Value};

/// Supabase local's published demo secret. Public on purpose: it signs
/// nothing but local data.
pub const DEMO_JWT_SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters-long";

/// Expiry of Supabase's demo API keys (2032-11-12), kept so our anon key is
/// byte-for-byte the one in Supabase's docs and CLI output.
const DEMO_KEY_EXP: i64 = 1_983_812_996;

/// Issuer of Supabase's demo API keys.
const DEMO_KEY_ISSUER: &str = "supabase-demo";

/// Issuer GoTrue writes into access tokens when served by `supabase start`.
pub const USER_TOKEN_ISSUER: &str = "http://127.0.0.1:54321/auth/v1";

/// Lifetime of a user access token: GoTrue's default `jwt_expiry`.
const USER_TOKEN_LIFETIME_SECS: i64 = 3600;

/// The users `dev/seed.sql` creates, with fixed ids so tests and the seed
/// agree without a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DemoUser {
    /// Owns the seeded account.
    Owner,
    /// Belongs to the seeded account without owning it.
    Member,
    /// Signed in, but belongs to no seeded account.
    Outsider,
}

impl DemoUser {
    /// Every demo user, in a fixed order.
    pub const ALL: [DemoUser; 3] = [DemoUser::Owner, DemoUser::Member, DemoUser::Outsider];

    /// The user's `auth.users.id`, which is the token's `sub`.
    pub fn id(self) -> &'static str {
        match self {
            DemoUser::Owner => "11111111-1111-4111-8111-111111111111",
            DemoUser::Member => "22222222-2222-4222-8222-222222222222",
            DemoUser::Outsider => "33333333-3333-4333-8333-333333333333",
        }
    }

    /// The user's email address.
    pub fn email(self) -> &'static str {
        match self {
            DemoUser::Owner => "owner@example.com",
            DemoUser::Member => "member@example.com",
            DemoUser::Outsider => "outsider@example.com",
        }
    }

    /// The lowercase name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DemoUser::Owner => "owner",
            DemoUser::Member => "member",
            DemoUser::Outsider => "outsider",
        }
    }

    /// A fixed session id per user, so a test can predict `session_id`.
    pub fn session_id(self) -> &'static str {
        match self {
            DemoUser::Owner => "aaaaaaaa-1111-4111-8111-111111111111",
            DemoUser::Member => "aaaaaaaa-2222-4222-8222-222222222222",
            DemoUser::Outsider => "aaaaaaaa-3333-4333-8333-333333333333",
        }
    }
}

impl fmt::Display for DemoUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DemoUser {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "owner" => Ok(DemoUser::Owner),
            "member" => Ok(DemoUser::Member),
            "outsider" => Ok(DemoUser::Outsider),
            other => bail!("unknown demo user {other:?} (expected owner, member or outsider)"),
        }
    }
}

/// Claims of Supabase's API keys. A struct rather than `json!` because
/// field order decides the encoded bytes, and we want Supabase's exact key.
#[derive(Serialize)]
struct ApiKeyClaims {
    iss: &'static str,
    role: &'static str,
    exp: i64,
}

/// Signs `claims` (a JSON object, sent as is: add `exp` yourself if you
/// want one) as an HS256 JWT with header `{"alg":"HS256","typ":"JWT"}`.
/// The token is remembered in [`minted`].
pub fn mint(secret: &str, claims: &impl Serialize) -> anyhow::Result<String> {
    sign_hs256(secret, claims).map(remember)
}

/// [`mint`] without remembering the token: for tokens that are not a
/// user's (a Storage stand-in's URL tokens), which the leak checks leave
/// alone.
pub fn sign_hs256(secret: &str, claims: &impl Serialize) -> anyhow::Result<String> {
    let value = serde_json::to_value(claims).context("serialize JWT claims")?;
    if !value.is_object() {
        bail!("JWT claims must be a JSON object, got {value}");
    }
    let header = Header::empty().with_token_type("JWT");
    // Sign `claims` itself, not `value`: a struct keeps its field order,
    // which is part of the signed bytes.
    Hs256
        .token(&header, &Claims::new(claims), &Hs256Key::new(secret))
        .context("sign JWT")
}

/// Every token [`mint`], [`mint_es256`] and [`mint_rs256`] (and their
/// `_as` forms) made in this
/// process (so every user token a test sends, unless it signed one by
/// hand), oldest first. The API keys are not in it: the anon key is public,
/// and the service key is a configured secret of its own.
pub fn minted() -> Vec<String> {
    MINTED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

static MINTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn remember(token: String) -> String {
    MINTED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(token.clone());
    token
}

/// Supabase's anon API key for `secret` (role `anon`).
pub fn anon_key(secret: &str) -> String {
    api_key(secret, "anon")
}

/// Supabase's service API key for `secret` (role `service_role`, which
/// bypasses row level security).
pub fn service_key(secret: &str) -> String {
    api_key(secret, "service_role")
}

fn api_key(secret: &str, role: &'static str) -> String {
    let claims = ApiKeyClaims {
        iss: DEMO_KEY_ISSUER,
        role,
        exp: DEMO_KEY_EXP,
    };
    // A fixed struct always serializes to an object, so this cannot fail.
    sign_hs256(secret, &claims).expect("API key claims are a fixed JSON object")
}

/// The claims GoTrue puts in an access token for `user` after an email and
/// password sign-in at `now`. Tests can edit the result and pass it to
/// [`mint`] to build expired or otherwise odd tokens.
pub fn user_claims(user: DemoUser, now: DateTime<Utc>) -> Value {
    let iat = now.timestamp();
    json!({
        "iss": USER_TOKEN_ISSUER,
        "sub": user.id(),
        "aud": "authenticated",
        "exp": iat + USER_TOKEN_LIFETIME_SECS,
        "iat": iat,
        "email": user.email(),
        "phone": "",
        "app_metadata": { "provider": "email", "providers": ["email"] },
        "user_metadata": {},
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{ "method": "password", "timestamp": iat }],
        "session_id": user.session_id(),
        "is_anonymous": false,
    })
}

/// A fresh one-hour access token for `user`.
pub fn user_token(secret: &str, user: DemoUser) -> String {
    let claims = user_claims(user, Utc::now());
    // `user_claims` always builds an object, so this cannot fail.
    mint(secret, &claims).expect("user claims are a JSON object")
}

/// The key id of the stack's ES256 signing key, as Supabase's asymmetric
/// JWT signing keys carry one.
pub const ES256_KID: &str = "edge-stack-es256";

type EsSigningKey = <Es256 as jwt_compact::Algorithm>::SigningKey;

/// The stack's fixed ES256 signing key: local only, like the demo secret.
fn es256_key() -> anyhow::Result<EsSigningKey> {
    EsSigningKey::from_slice(&[0x42; 32]).map_err(|e| anyhow::anyhow!("P-256 scalar: {e}"))
}

/// The public half, as a JWK (what Supabase's JWKS endpoint lists).
pub fn es256_jwk() -> anyhow::Result<Value> {
    let public = es256_key()?.to_verifying_key();
    let mut jwk = serde_json::to_value(JsonWebKey::from(&public))?;
    jwk["kid"] = json!(ES256_KID);
    jwk["alg"] = json!("ES256");
    jwk["use"] = json!("sig");
    Ok(jwk)
}

/// Signs `claims` as an ES256 JWT with the stack's key and kid.
pub fn mint_es256(claims: &impl Serialize) -> anyhow::Result<String> {
    mint_es256_as(ES256_KID, claims)
}

/// The same under any `kid`, for tests of kids that point nowhere.
pub fn mint_es256_as(kid: &str, claims: &impl Serialize) -> anyhow::Result<String> {
    let header = Header::empty().with_token_type("JWT").with_key_id(kid);
    Es256
        .token(&header, &Claims::new(claims), &es256_key()?)
        .context("sign ES256 JWT")
        .map(remember)
}

/// The key id of the stack's RS256 signing key.
pub const RS256_KID: &str = "edge-stack-rs256";

/// The stack's fixed 2048-bit RS256 key, as a private JWK (RFC 7518
/// section 6.3). Made once with `openssl genpkey -algorithm RSA -pkeyopt
/// rsa_keygen_bits:2048`; local only, like the demo secret. Fixed rather
/// than generated at start: RSA key generation takes seconds in a debug
/// build, and a fixed key keeps tokens reproducible across runs.
const RS256_PRIVATE_JWK: &str = include_str!("../keys/rs256-private.jwk.json");

fn rs256_key() -> anyhow::Result<&'static RsaPrivateKey> {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    if let Some(key) = KEY.get() {
        return Ok(key);
    }
    let jwk: JsonWebKey<'_> =
        serde_json::from_str(RS256_PRIVATE_JWK).context("parse the RS256 private JWK")?;
    let key = RsaPrivateKey::try_from(&jwk).map_err(|e| anyhow::anyhow!("RS256 key: {e}"))?;
    Ok(KEY.get_or_init(|| key))
}

/// The public half of the RS256 key, as a JWK.
pub fn rs256_jwk() -> anyhow::Result<Value> {
    let public = rs256_key()?.to_public_key();
    let mut jwk = serde_json::to_value(JsonWebKey::from(&public))?;
    jwk["kid"] = json!(RS256_KID);
    jwk["alg"] = json!("RS256");
    jwk["use"] = json!("sig");
    Ok(jwk)
}

/// Signs `claims` as an RS256 JWT with the stack's RSA key and kid.
pub fn mint_rs256(claims: &impl Serialize) -> anyhow::Result<String> {
    mint_rs256_as(RS256_KID, claims)
}

/// The same under any `kid`.
pub fn mint_rs256_as(kid: &str, claims: &impl Serialize) -> anyhow::Result<String> {
    let header = Header::empty().with_token_type("JWT").with_key_id(kid);
    Rsa::rs256()
        .token(&header, &Claims::new(claims), rs256_key()?)
        .context("sign RS256 JWT")
        .map(remember)
}

/// The key id of the symmetric key the Auth stand-in's JWKS also lists.
pub const OCT_KID: &str = "edge-stack-oct";

/// A symmetric (`oct`) key listed in the Auth stand-in's JWKS, which
/// Supabase never publishes: a JWKS is public, so a verifier that took an
/// HMAC key from it would accept tokens anyone can sign. Tests sign with it
/// to prove the functions never do.
pub const OCT_KEY: &[u8] = b"a-symmetric-key-published-in-a-jwks-for-all-to-see";

/// [`OCT_KEY`] as a JWK, under [`OCT_KID`].
pub fn oct_jwk() -> anyhow::Result<Value> {
    let mut jwk = serde_json::to_value(JsonWebKey::from(&Hs256Key::new(OCT_KEY)))?;
    jwk["kid"] = json!(OCT_KID);
    jwk["alg"] = json!("HS256");
    Ok(jwk)
}

/// The key set PostgREST verifies with: the HS256 secret and the ES256 and
/// RS256 public keys, as a Supabase project with asymmetric keys
/// configures it.
pub fn postgrest_jwks(secret: &str) -> anyhow::Result<String> {
    let mut symmetric = serde_json::to_value(JsonWebKey::from(&Hs256Key::new(secret)))?;
    symmetric["alg"] = json!("HS256");
    Ok(json!({"keys": [symmetric, es256_jwk()?, rs256_jwk()?]}).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jwt_compact::{TimeOptions, UntrustedToken};

    /// Checks the signature with the demo secret and returns the claims.
    fn verify(token: &str) -> Value {
        let untrusted = UntrustedToken::new(token).expect("token parses");
        assert_eq!(untrusted.algorithm(), "HS256");
        let token = Hs256
            .validator::<Value>(&Hs256Key::new(DEMO_JWT_SECRET))
            .validate(&untrusted)
            .expect("signature is valid");
        // Re-serialize so `exp`/`iat`, which jwt-compact lifts out of
        // `custom`, are part of the result.
        serde_json::to_value(token.claims()).expect("claims serialize")
    }

    #[test]
    fn anon_key_is_supabase_published_demo_key() {
        // From Supabase's self-hosting docs and `supabase status`.
        let published = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
            eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleHAiOjE5ODM4MTI5OTZ9.\
            CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0";
        assert_eq!(anon_key(DEMO_JWT_SECRET), published);
    }

    #[test]
    fn service_key_is_supabase_published_demo_key() {
        let published = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
            eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6InNlcnZpY2Vfcm9sZSIsImV4cCI6MTk4MzgxMjk5Nn0.\
            EGIM96RAZx35lJzdJsyH-qQwv8Hdp7fsn3W0YpN81IU";
        assert_eq!(service_key(DEMO_JWT_SECRET), published);
    }

    #[test]
    fn api_keys_carry_their_role() {
        assert_eq!(verify(&anon_key(DEMO_JWT_SECRET))["role"], "anon");
        assert_eq!(
            verify(&service_key(DEMO_JWT_SECRET))["role"],
            "service_role"
        );
    }

    #[test]
    fn user_token_has_supabase_access_token_claims() {
        for user in DemoUser::ALL {
            let claims = verify(&user_token(DEMO_JWT_SECRET, user));
            assert_eq!(claims["sub"], user.id());
            assert_eq!(claims["email"], user.email());
            assert_eq!(claims["aud"], "authenticated");
            assert_eq!(claims["role"], "authenticated");
            assert_eq!(claims["aal"], "aal1");
            assert_eq!(claims["session_id"], user.session_id());
            assert_eq!(claims["is_anonymous"], false);
            assert_eq!(claims["app_metadata"]["provider"], "email");
            assert_eq!(claims["user_metadata"], json!({}));
        }
    }

    #[test]
    fn user_token_expires_in_one_hour() {
        let token = user_token(DEMO_JWT_SECRET, DemoUser::Member);
        let claims = verify(&token);
        let iat = claims["iat"].as_i64().expect("iat is a number");
        let exp = claims["exp"].as_i64().expect("exp is a number");
        assert_eq!(exp - iat, 3600);
        assert!((iat - Utc::now().timestamp()).abs() < 60);

        // jwt-compact's own expiry check agrees the token is live.
        let untrusted = UntrustedToken::new(&token).expect("token parses");
        let checked = Hs256
            .validator::<Value>(&Hs256Key::new(DEMO_JWT_SECRET))
            .validate(&untrusted)
            .expect("signature is valid");
        checked
            .claims()
            .validate_expiration(&TimeOptions::default())
            .expect("not expired");
    }

    #[test]
    fn mint_signs_claims_as_given() {
        let claims = json!({ "role": "authenticated", "exp": 1, "custom": [1, 2] });
        assert_eq!(
            verify(&mint(DEMO_JWT_SECRET, &claims).expect("mints")),
            claims
        );
    }

    #[test]
    fn mint_rejects_non_object_claims() {
        assert!(mint(DEMO_JWT_SECRET, &json!("just a string")).is_err());
    }

    #[test]
    fn token_signed_with_other_secret_fails_verification() {
        let token = mint("another-secret-that-is-at-least-32-chars", &json!({})).expect("mints");
        let untrusted = UntrustedToken::new(&token).expect("token parses");
        assert!(Hs256
            .validator::<Value>(&Hs256Key::new(DEMO_JWT_SECRET))
            .validate(&untrusted)
            .is_err());
    }

    #[test]
    fn rs256_tokens_verify_with_the_published_key() {
        let token = mint_rs256(&json!({ "sub": "x" })).expect("mints");
        let untrusted = UntrustedToken::new(&token).expect("token parses");
        assert_eq!(untrusted.algorithm(), "RS256");
        assert_eq!(untrusted.header().key_id.as_deref(), Some(RS256_KID));
        let jwk: JsonWebKey<'_> = serde_json::from_value(rs256_jwk().expect("jwk")).expect("jwk");
        let JsonWebKey::Rsa { modulus, .. } = &jwk else {
            panic!("not an RSA JWK: {jwk}");
        };
        assert_eq!(modulus.len() * 8, 2048, "RFC 7518: at least 2048 bits");
        let public =
            <Rsa as jwt_compact::Algorithm>::VerifyingKey::try_from(&jwk).expect("public key");
        Rsa::rs256()
            .validator::<Value>(&public)
            .validate(&untrusted)
            .expect("signature is valid");
    }

    #[test]
    fn minted_user_tokens_are_remembered_api_keys_are_not() {
        let token = mint(DEMO_JWT_SECRET, &json!({ "sub": "remembered" })).expect("mints");
        let es = mint_es256(&json!({ "sub": "remembered-es" })).expect("mints");
        let all = minted();
        assert!(all.contains(&token) && all.contains(&es));
        assert!(!all.contains(&anon_key(DEMO_JWT_SECRET)));
        assert!(!all.contains(&service_key(DEMO_JWT_SECRET)));
    }

    #[test]
    fn demo_user_names_round_trip() {
        for user in DemoUser::ALL {
            assert_eq!(user.name().parse::<DemoUser>().expect("parses"), user);
        }
        assert!("admin".parse::<DemoUser>().is_err());
    }
}
