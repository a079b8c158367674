//! What a function needs to know to verify its callers' tokens, read once
//! per isolate from its vars and secrets.

use edge_core::{ConfigError, Secret, Vars};

/// How user tokens are verified. Read with [`JwtConfig::from_vars`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// `SUPABASE_JWT_SECRET` (secret): the project's legacy shared secret,
    /// which signs HS256 tokens. Unset when the project only signs with
    /// asymmetric keys; HS256 tokens are then refused.
    pub secret: Option<JwtSecret>,
    /// `SUPABASE_JWKS_URL`: where the public keys for ES256/RS256 tokens are
    /// published. Defaults to `${SUPABASE_URL}/auth/v1/.well-known/jwks.json`
    /// when `SUPABASE_URL` is set; unset, ES256/RS256 tokens are refused.
    pub jwks_url: Option<String>,
    /// `JWT_AUDIENCE`: a token's `aud` must contain it. Default
    /// `authenticated`, what Supabase Auth writes into user access tokens.
    pub audience: String,
    /// `JWT_ISSUER`: when set, a token's `iss` must equal it exactly
    /// (`https://<ref>.supabase.co/auth/v1`). Unset, `iss` is not checked.
    pub issuer: Option<String>,
    /// `JWT_LEEWAY_SECS`: how far our clock and the issuer's may disagree
    /// when checking `exp` and `nbf`. Default 30, at most 300.
    pub leeway_secs: u32,
    /// `JWKS_TIMEOUT_MS`: how long to wait for the JWKS. Default 5000; past
    /// it the request is a 503 (or, with keys already known, they are used).
    pub jwks_timeout_ms: u64,
}

impl JwtConfig {
    pub const DEFAULT_AUDIENCE: &'static str = "authenticated";
    pub const DEFAULT_LEEWAY_SECS: u32 = 30;
    pub const DEFAULT_JWKS_TIMEOUT_MS: u64 = 5000;
    const MAX_LEEWAY_SECS: u32 = 300;
    /// Where Supabase Auth publishes its signing keys, under the project URL.
    pub const JWKS_PATH: &'static str = "/auth/v1/.well-known/jwks.json";

    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let secret = vars
            .optional("SUPABASE_JWT_SECRET")
            .map(JwtSecret::checked)
            .transpose()?;
        let jwks_url = if vars.optional("SUPABASE_JWKS_URL").is_some() {
            Some(vars.url("SUPABASE_JWKS_URL")?)
        } else if vars.optional("SUPABASE_URL").is_some() {
            Some(format!("{}{}", vars.url("SUPABASE_URL")?, Self::JWKS_PATH))
        } else {
            None
        };
        if secret.is_none() && jwks_url.is_none() {
            return Err(ConfigError::new(
                "SUPABASE_JWT_SECRET",
                "is required when neither SUPABASE_JWKS_URL nor SUPABASE_URL is set \
                 (no way to verify user tokens)",
            ));
        }
        let leeway_secs = vars.parse_or("JWT_LEEWAY_SECS", Self::DEFAULT_LEEWAY_SECS)?;
        if leeway_secs > Self::MAX_LEEWAY_SECS {
            return Err(ConfigError::new(
                "JWT_LEEWAY_SECS",
                format!("must be at most {}", Self::MAX_LEEWAY_SECS),
            ));
        }
        Ok(Self {
            secret,
            jwks_url,
            audience: vars
                .optional("JWT_AUDIENCE")
                .unwrap_or_else(|| Self::DEFAULT_AUDIENCE.to_owned()),
            issuer: vars.optional("JWT_ISSUER"),
            leeway_secs,
            jwks_timeout_ms: vars.parse_or("JWKS_TIMEOUT_MS", Self::DEFAULT_JWKS_TIMEOUT_MS)?,
        })
    }
}

/// The HS256 shared secret, used as its UTF-8 bytes (as Supabase Auth and
/// PostgREST use it). Its `Debug` never shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtSecret(Secret);

impl JwtSecret {
    /// RFC 7518 section 3.2: an HS256 key must be at least 256 bits.
    pub const MIN_LEN: usize = 32;

    /// Wraps a secret of at least [`Self::MIN_LEN`] bytes; shorter ones are
    /// refused, since a short HMAC key can be brute-forced from one token.
    pub fn new(secret: impl Into<String>) -> Result<Self, ConfigError> {
        Self::checked(secret.into())
    }

    fn checked(secret: String) -> Result<Self, ConfigError> {
        if secret.len() < Self::MIN_LEN {
            return Err(ConfigError::new(
                "SUPABASE_JWT_SECRET",
                format!("must be at least {} bytes long", Self::MIN_LEN),
            ));
        }
        Ok(Self(Secret::new(secret)))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.expose().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters-long";

    #[test]
    fn defaults_and_jwks_url_from_supabase_url() {
        let src = [("SUPABASE_URL", "https://abc.supabase.co/")];
        let config = JwtConfig::from_vars(&Vars(&src)).expect("config");
        assert_eq!(
            config,
            JwtConfig {
                secret: None,
                jwks_url: Some("https://abc.supabase.co/auth/v1/.well-known/jwks.json".into()),
                audience: "authenticated".into(),
                issuer: None,
                leeway_secs: 30,
                jwks_timeout_ms: 5000,
            }
        );
    }

    #[test]
    fn explicit_values_win() {
        let src = [
            ("SUPABASE_URL", "https://abc.supabase.co"),
            ("SUPABASE_JWKS_URL", "http://127.0.0.1:9999/keys"),
            ("SUPABASE_JWT_SECRET", SECRET),
            ("JWT_AUDIENCE", "my-aud"),
            ("JWT_ISSUER", "https://abc.supabase.co/auth/v1"),
            ("JWT_LEEWAY_SECS", "5"),
        ];
        let config = JwtConfig::from_vars(&Vars(&src)).expect("config");
        assert_eq!(
            config.jwks_url.as_deref(),
            Some("http://127.0.0.1:9999/keys")
        );
        assert_eq!(
            config.secret.as_ref().map(JwtSecret::as_bytes),
            Some(SECRET.as_bytes())
        );
        assert_eq!(config.audience, "my-aud");
        assert_eq!(
            config.issuer.as_deref(),
            Some("https://abc.supabase.co/auth/v1")
        );
        assert_eq!(config.leeway_secs, 5);
    }

    #[test]
    fn secret_alone_is_enough() {
        let src = [("SUPABASE_JWT_SECRET", SECRET)];
        let config = JwtConfig::from_vars(&Vars(&src)).expect("config");
        assert!(config.jwks_url.is_none());
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "SUPABASE_JWT_SECRET"),
            (&[("SUPABASE_JWT_SECRET", "  ")], "SUPABASE_JWT_SECRET"),
            (&[("SUPABASE_JWT_SECRET", "short")], "SUPABASE_JWT_SECRET"),
            (&[("SUPABASE_URL", "abc.supabase.co")], "SUPABASE_URL"),
            (
                &[("SUPABASE_URL", "https://x"), ("SUPABASE_JWKS_URL", "x")],
                "SUPABASE_JWKS_URL",
            ),
            (
                &[("SUPABASE_URL", "https://x"), ("JWT_LEEWAY_SECS", "-1")],
                "JWT_LEEWAY_SECS",
            ),
            (
                &[("SUPABASE_URL", "https://x"), ("JWT_LEEWAY_SECS", "3600")],
                "JWT_LEEWAY_SECS",
            ),
        ];
        for (src, name) in cases {
            let map: std::collections::HashMap<String, String> = src
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let err = JwtConfig::from_vars(&Vars(&map)).expect_err("must fail");
            assert_eq!(err.name, *name, "{src:?}: {err}");
        }
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let src = [("SUPABASE_JWT_SECRET", SECRET)];
        let config = JwtConfig::from_vars(&Vars(&src)).expect("config");
        let printed = format!("{config:?} {:?}", config.secret);
        assert!(!printed.contains(SECRET), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");

        let err = JwtSecret::new("tiny-secret").expect_err("too short");
        assert!(!err.to_string().contains("tiny-secret"));
    }
}
