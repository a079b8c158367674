//! Who is calling: verification of Supabase Auth access tokens.
//!
//! A [`Verifier`] checks a user's JWT the way Supabase signs it today: HS256
//! with the project's legacy shared secret, or ES256/RS256 with an
//! asymmetric key published in the project's JWKS
//! (<https://supabase.com/docs/guides/auth/signing-keys>). [`Verifier::authenticate`]
//! reads the `Authorization: Bearer` header, verifies, applies a [`Policy`]
//! and returns an [`AuthenticatedUser`], the only way `edge-db` will build a
//! PostgREST client that acts as the caller. Every rejection is the same 401
//! to the caller; the precise reason (never the token) is in the error for
//! the log. A JWKS that cannot be fetched is a 503 instead: the client did
//! nothing wrong.
//!
//! Left out on purpose: issuing or refreshing tokens (Supabase Auth does
//! that), revocation lists (a token is good until `exp`, as for PostgREST
//! itself), authorization beyond "is a real user" (row-level security
//! decides what a user may do), and algorithms Supabase does not sign with.
//!
//! Why the shape: in workerd, ES256 through pure-Rust `p256` costs about
//! 2.1 ms of CPU per request, against 0.15 ms through WebCrypto, and the
//! free plan allows 10 ms. So on wasm32 jwt-compact only parses the token
//! and checks HS256, while ES256/RS256 signatures go to `crypto.subtle`;
//! natively (tests, tools) jwt-compact's pure-Rust backends do it. The two
//! backends share one contract (`backend/native.rs`, `backend/webcrypto.rs`)
//! and everything else, including every check below, is the same code on
//! both. The clock is passed in (`now`): chrono's clock panics on wasm32
//! without `wasmbind`, and tests need to move time.

mod claims;
mod config;
mod jwks;
mod verified;

#[cfg_attr(not(target_arch = "wasm32"), path = "backend/native.rs")]
#[cfg_attr(target_arch = "wasm32", path = "backend/webcrypto.rs")]
mod backend;

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use edge_core::{Error, Request, Sleep};
use jwt_compact::alg::{Hs256, Hs256Key, Hs256Signature};
use jwt_compact::{Algorithm, AlgorithmSignature, TimeOptions, UntrustedToken, ValidationError};
use uuid::Uuid;

pub use claims::{Audience, Claims};
pub use config::{JwtConfig, JwtSecret};

use jwks::JwksCache;
use verified::VerifiedTokens;

/// Longer bearer values are refused before parsing. Supabase access tokens
/// are well under 2 KiB unless `user_metadata` is large.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Longer key ids are refused: they are quoted in log reasons.
const MAX_KID_BYTES: usize = 128;

/// The algorithms Supabase Auth signs access tokens with; nothing else is
/// accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alg {
    Hs256,
    Es256,
    Rs256,
}

impl Alg {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "HS256" => Some(Alg::Hs256),
            "ES256" => Some(Alg::Es256),
            "RS256" => Some(Alg::Rs256),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Es256 => "ES256",
            Alg::Rs256 => "RS256",
        }
    }
}

/// Who a route admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// A signed-in user with a permanent account: role `authenticated` and
    /// not created by an anonymous sign-in.
    User,
    /// Any user, including those from anonymous sign-ins (still role
    /// `authenticated`).
    AnyUser,
}

impl Policy {
    /// The role Supabase gives users; `anon` and `service_role` belong to
    /// the project's API keys, not to people.
    const USER_ROLE: &'static str = "authenticated";

    fn admit(self, claims: &Claims) -> Result<(), Error> {
        if claims.role != Self::USER_ROLE {
            return Err(Error::unauthorized(format!(
                "role {:?} is not a user (user {})",
                claims.role, claims.sub
            )));
        }
        if self == Policy::User && claims.is_anonymous {
            return Err(Error::unauthorized(format!(
                "anonymous user {} on a route that needs a permanent account",
                claims.sub
            )));
        }
        Ok(())
    }
}

/// A caller whose token has been verified and admitted by a [`Policy`].
/// Only this crate can make one, so code that demands one (`edge-db`'s
/// as-user client) knows the token it forwards was checked.
#[derive(Clone)]
pub struct AuthenticatedUser {
    claims: Claims,
    token: String,
}

impl AuthenticatedUser {
    /// The verified access token, to forward as `Authorization: Bearer`
    /// so PostgREST applies row-level security as this user.
    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// `auth.uid()` in SQL.
    pub fn user_id(&self) -> Uuid {
        self.claims.sub
    }
}

impl fmt::Debug for AuthenticatedUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticatedUser")
            .field("claims", &self.claims)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Verifies tokens. Build one per isolate (it caches the JWKS, imported
/// keys and recently verified tokens) and share it between requests.
pub struct Verifier {
    config: JwtConfig,
    http: reqwest::Client,
    sleep: Sleep,
    hmac_key: Option<Hs256Key>,
    jwks: Option<JwksCache>,
    verified: Mutex<VerifiedTokens>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// `http` fetches the JWKS: natively on tokio, in workerd through
    /// `fetch`, bounded by `config.jwks_timeout_ms` on `sleep`'s timer.
    /// Nothing is fetched until a token needs a key.
    pub fn new(config: JwtConfig, http: reqwest::Client, sleep: Sleep) -> Self {
        Self {
            sleep,
            hmac_key: config.secret.as_ref().map(|s| Hs256Key::new(s.as_bytes())),
            jwks: config.jwks_url.clone().map(JwksCache::new),
            verified: Mutex::new(VerifiedTokens::default()),
            config,
            http,
        }
    }

    pub fn config(&self) -> &JwtConfig {
        &self.config
    }

    /// Reads `Authorization: Bearer <token>`, verifies the token at `now`
    /// (Unix seconds) and admits its user by `policy`. Any failure but an
    /// unreachable JWKS is a 401.
    pub async fn authenticate(
        &self,
        req: &Request,
        now: i64,
        policy: Policy,
    ) -> Result<AuthenticatedUser, Error> {
        let token = bearer_token(req)?;
        let claims = self.verify(token, now).await?;
        policy.admit(&claims)?;
        Ok(AuthenticatedUser {
            claims,
            token: token.to_owned(),
        })
    }

    /// Verifies `token` at `now` (Unix seconds) and returns its claims.
    /// Every failure is [`Error::Unauthorized`] with the reason, except a
    /// JWKS that is needed and cannot be fetched: [`Error::Unavailable`].
    pub async fn verify(&self, token: &str, now: i64) -> Result<Claims, Error> {
        let digest = verified::digest(token);
        let leeway = i64::from(self.config.leeway_secs);
        if let Some(claims) = self.verified_tokens().get(&digest, now, leeway) {
            return Ok(claims);
        }
        let claims = self.verify_uncached(token, now).await?;
        self.verified_tokens().insert(digest, &claims, now);
        Ok(claims)
    }

    async fn verify_uncached(&self, token: &str, now: i64) -> Result<Claims, Error> {
        // 1. Parse: three base64url segments and a JSON header naming `alg`.
        //    Nothing in it is trusted yet; it only says how to check the rest.
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Error::unauthorized(format!(
                "token is {} bytes, over the {MAX_TOKEN_BYTES} limit",
                token.len()
            )));
        }
        let untrusted = UntrustedToken::new(token).map_err(|e| {
            Error::unauthorized(if token.starts_with("sb_") {
                "bearer is a Supabase API key (sb_...), not a user token".to_owned()
            } else {
                format!("malformed token: {e}")
            })
        })?;
        // The bytes the signature covers: `header.payload`, as sent.
        let signed = token
            .rsplit_once('.')
            .map(|(signed, _)| signed.as_bytes())
            .unwrap_or_default();
        let signature = untrusted.signature_bytes();

        // 2. Algorithm: only what Supabase Auth signs with. `none` (an
        //    unsigned token) and anything else are refused outright.
        let alg = match untrusted.algorithm() {
            "none" => return Err(Error::unauthorized("alg none: unsigned tokens are refused")),
            name => Alg::from_name(name).ok_or_else(|| {
                Error::unauthorized(format!("alg {:?} is not accepted", truncated(name, 32)))
            })?,
        };

        // 3. Key, and 4. signature. The key is bound to the algorithm, never
        //    chosen by the token alone: HS256 only ever meets the shared
        //    secret, ES256/RS256 only a JWKS key whose `kty` (and `alg`)
        //    says the same algorithm. So a public key can never be used as
        //    an HMAC secret, nor an HMAC passed off as ES256.
        let valid = match alg {
            Alg::Hs256 => {
                let key = self.hmac_key.as_ref().ok_or_else(|| {
                    Error::unauthorized("HS256 token, but SUPABASE_JWT_SECRET is not configured")
                })?;
                hs256_valid(key, signed, signature)
            }
            Alg::Es256 | Alg::Rs256 => {
                let jwks = self.jwks.as_ref().ok_or_else(|| {
                    Error::unauthorized(format!(
                        "{} token, but no JWKS URL is configured",
                        alg.name()
                    ))
                })?;
                let kid = untrusted.header().key_id.as_deref().ok_or_else(|| {
                    Error::unauthorized(format!("{} token without a kid", alg.name()))
                })?;
                if kid.len() > MAX_KID_BYTES {
                    // Supabase's kids are UUIDs; this one only fills logs.
                    return Err(Error::unauthorized(format!(
                        "kid is {} bytes, over the {MAX_KID_BYTES} limit",
                        kid.len()
                    )));
                }
                let deadline = (
                    self.sleep,
                    std::time::Duration::from_millis(self.config.jwks_timeout_ms),
                );
                let (entry, refreshed) = jwks.key(&self.http, deadline, kid, now).await?;
                if refreshed {
                    // Tokens verified against the old key set may have used
                    // a key that is gone now.
                    self.verified_tokens().clear();
                }
                let key = entry.map_err(Error::unauthorized)?;
                if key.alg != alg {
                    return Err(Error::unauthorized(format!(
                        "alg mismatch: token says {}, key {kid:?} is for {}",
                        alg.name(),
                        key.alg.name()
                    )));
                }
                if alg == Alg::Es256 && signature.len() != 64 {
                    return Err(Error::unauthorized(format!(
                        "ES256 signature is {} bytes, not 64",
                        signature.len()
                    )));
                }
                backend::verify(&key.public, signed, signature)
                    .await
                    .map_err(|e| Error::internal(format!("signature backend failed: {e}")))?
            }
        };
        if !valid {
            return Err(Error::unauthorized(format!(
                "{} signature does not verify{}",
                alg.name(),
                untrusted
                    .header()
                    .key_id
                    .as_deref()
                    .map(|kid| format!(" (kid {kid:?})"))
                    .unwrap_or_default()
            )));
        }
        // Only now are the claims worth reading.
        let parsed = untrusted
            .deserialize_claims_unchecked::<Claims>()
            .map_err(|e| malformed_claims(&untrusted, e))?;

        // 5. Time: `exp` is required, `nbf` checked when present, both with
        //    the configured leeway against the caller's clock.
        let leeway = i64::from(self.config.leeway_secs);
        let now_utc = DateTime::<Utc>::from_timestamp(now, 0)
            .ok_or_else(|| Error::internal(format!("clock value {now} is out of range")))?;
        let time = TimeOptions::new(TimeDelta::seconds(leeway), move || now_utc);
        let exp = parsed.expiration.map(|t| t.timestamp());
        parsed.validate_expiration(&time).map_err(|e| match e {
            ValidationError::NoClaim(_) => Error::unauthorized("no exp claim"),
            _ => Error::unauthorized(format!(
                "expired at {} (now {now}, leeway {leeway}s)",
                exp.unwrap_or_default()
            )),
        })?;
        if let Some(nbf) = parsed.not_before {
            parsed.validate_maturity(&time).map_err(|_| {
                Error::unauthorized(format!(
                    "not valid before {} (now {now}, leeway {leeway}s)",
                    nbf.timestamp()
                ))
            })?;
        }
        let mut claims = parsed.custom;
        claims.exp = exp.unwrap_or_default();
        claims.nbf = parsed.not_before.map(|t| t.timestamp());
        claims.iat = parsed.issued_at.map(|t| t.timestamp());

        // 6. Audience: tokens minted for something else are not for us.
        if !claims.aud.contains(&self.config.audience) {
            return Err(Error::unauthorized(format!(
                "aud {:?} does not include {:?} (role {:?})",
                claims.aud, self.config.audience, claims.role
            )));
        }
        // 7. Issuer, when configured: exactly, no prefix or case games.
        if let Some(issuer) = &self.config.issuer {
            if claims.iss.as_deref() != Some(issuer.as_str()) {
                return Err(Error::unauthorized(format!(
                    "iss {:?} is not {issuer:?}",
                    claims.iss
                )));
            }
        }
        // 8. Role: PostgREST switches to it, so a token without one is
        //    useless at best. Which roles a route admits is the Policy's call.
        if claims.role.is_empty() {
            return Err(Error::unauthorized("no role claim"));
        }
        Ok(claims)
    }

    fn verified_tokens(&self) -> MutexGuard<'_, VerifiedTokens> {
        // A cache only: a panic elsewhere cannot leave it inconsistent.
        self.verified.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The token from `Authorization: Bearer <token>` (RFC 6750 section 2.1;
/// the scheme is case-insensitive, RFC 9110 section 11.1).
fn bearer_token(req: &Request) -> Result<&str, Error> {
    let value = req
        .header("authorization")
        .ok_or_else(|| Error::unauthorized("no Authorization header"))?
        .trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        // The scheme is not a credential, but cap what reaches the log.
        let shown: String = scheme.chars().take(16).collect();
        return Err(Error::unauthorized(format!(
            "Authorization scheme {shown:?} is not Bearer"
        )));
    }
    let token = token.trim();
    if token.is_empty() || token.contains(|c: char| c.is_whitespace() || c == ',') {
        return Err(Error::unauthorized("malformed Bearer credentials"));
    }
    Ok(token)
}

/// At most `max` characters of a value the token chose, for the log.
fn truncated(value: &str, max: usize) -> &str {
    value
        .char_indices()
        .nth(max)
        .map_or(value, |(end, _)| &value[..end])
}

/// HMAC-SHA256 over the signed part, compared in constant time.
fn hs256_valid(key: &Hs256Key, signed: &[u8], signature: &[u8]) -> bool {
    // jwt-compact's `try_from_slice` panics on a wrong length: check first.
    signature.len() == 32
        && Hs256Signature::try_from_slice(signature)
            .is_ok_and(|sig| Hs256.verify_signature(&sig, key, signed))
}

/// Claims that do not parse, after a valid signature. Names the role when
/// it can be read: Supabase's API keys (`anon`, `service_role`) are JWTs
/// without `sub`, and that is the usual way to end up here.
fn malformed_claims(untrusted: &UntrustedToken<'_>, err: ValidationError) -> Error {
    #[derive(serde::Deserialize)]
    struct RoleOnly {
        role: Option<String>,
    }
    let role = untrusted
        .deserialize_claims_unchecked::<RoleOnly>()
        .ok()
        .and_then(|c| c.custom.role);
    Error::unauthorized(match role {
        Some(role) => format!("claims do not parse (role {role:?}): {err}"),
        None => format!("claims do not parse: {err}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_core::Method;

    fn with_auth(value: &str) -> Request {
        Request::new(Method::Get, "/x").with_header("Authorization", value)
    }

    #[test]
    fn bearer_header_parsing() {
        let ok = [
            ("Bearer abc.def.ghi", "abc.def.ghi"),
            ("bearer abc.def.ghi", "abc.def.ghi"),
            ("BEARER   abc.def.ghi  ", "abc.def.ghi"),
        ];
        for (header, token) in ok {
            assert_eq!(
                bearer_token(&with_auth(header)).ok(),
                Some(token),
                "{header}"
            );
        }
        let bad = [
            ("Basic dXNlcjpwYXNz", "scheme"),
            ("Bearer", "malformed"),
            ("Bearer ", "malformed"),
            ("Bearer a b", "malformed"),
            ("Bearer a,b", "malformed"),
            ("abc.def.ghi", "scheme"),
            ("", "scheme"),
        ];
        for (header, reason) in bad {
            let err = bearer_token(&with_auth(header)).expect_err(header);
            assert_eq!(err.status(), 401);
            let logged = err.log_detail().unwrap_or_default();
            assert!(logged.contains(reason), "{header:?}: {logged}");
        }
        let err = bearer_token(&Request::new(Method::Get, "/x")).expect_err("missing");
        assert!(err
            .log_detail()
            .unwrap_or_default()
            .contains("no Authorization"));
    }

    #[test]
    fn hs256_signature_of_the_wrong_length_is_invalid_not_a_panic() {
        let key = Hs256Key::new([7u8; 32]);
        for len in [0, 31, 33, 64] {
            assert!(!hs256_valid(&key, b"a.b", &vec![0; len]));
        }
    }

    #[test]
    fn native_verifier_is_shareable_across_tokio_tasks() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Verifier>();
        assert_send_sync::<AuthenticatedUser>();
    }
}
