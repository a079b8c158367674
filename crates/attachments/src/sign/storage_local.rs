//! Storage signed URLs minted here, for self-hosted Supabase Storage whose
//! JWT secret we hold: no network call.
//!
//! Matches supabase/storage v1.70.6 (commit 4fa61fba9371c4bd40cbb81509f07bcb3af21683):
//! `src/storage/object.ts` (`signObjectUrls`, `signUploadObjectUrl`,
//! `verifyObjectSignature`) and `src/internal/auth/jwt.ts` (`signJWT`,
//! `isDownloadScopedToken`, `isUploadScopedToken`). Storage signs with
//! jose as `new SignJWT(payload).setIssuedAt().setExpirationTime(n)
//! .setProtectedHeader({alg})`, so a token is header `{"alg":"HS256"}` and
//! claims, in this order:
//!
//! - download: `{"url":"{bucket}/{path}","scope":"download","iat","exp"}`
//!   for `GET {STORAGE_URL}/object/sign/{bucket}/{path}?token=...`;
//! - upload: `{"url":"{bucket}/{path}","upsert":false,"scope":"upload","iat","exp"}`
//!   for `PUT {STORAGE_URL}/object/upload/sign/{bucket}/{path}?token=...`
//!   (`owner` is left out, as Storage leaves it out when the service key
//!   signs).
//!
//! We produce the same bytes (a test pins a token jose made), so the token
//! is indistinguishable from one Storage minted itself. Storage checks it
//! with its `AUTH_JWT_SECRET` (`PGRST_JWT_SECRET`), the algorithm in
//! `AUTH_JWT_ALGORITHM` (default HS256; we sign HS256 only, the one
//! jwt-compact offers on wasm without extra crates), then: the scope fits
//! the route, `url` equals `{bucket}/{decoded path}`, and `exp` is not
//! past. `upsert` is also set on upload tokens because Storage before
//! v1.60.7 had no `scope` and told upload tokens apart by it.
//!
//! Left out: `kid`-addressed URL-signing keys from a JWKS (Storage still
//! accepts tokens signed with its plain secret), image transformations.

use super::storage::{bucket, check_key, download, object_url, storage_url, upload};
use super::{Access, Backend, Settings, SignedUrl, Signing};
use edge_core::{ConfigError, Error, Secret, Sleep, Vars};
use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{AlgorithmExt, Claims, Header};
use serde::{Deserialize, Serialize};

/// Self-hosted Storage settings. `Debug` omits the secret.
#[derive(Clone, Debug)]
pub struct LocalConfig {
    /// `STORAGE_URL`, or `${SUPABASE_URL}/storage/v1` when unset: where the
    /// client sends the signed request.
    pub url: String,
    /// `STORAGE_BUCKET`: the private bucket (default `attachments`).
    pub bucket: String,
    /// `STORAGE_JWT_SECRET` (secret): Storage's `AUTH_JWT_SECRET`, at least
    /// 32 characters as Supabase requires of a JWT secret.
    secret: Secret,
}

impl LocalConfig {
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let secret = vars.secret("STORAGE_JWT_SECRET")?;
        if secret.expose().len() < 32 {
            return Err(ConfigError::new(
                "STORAGE_JWT_SECRET",
                "must be at least 32 characters",
            ));
        }
        Ok(Self {
            url: storage_url(vars)?,
            bucket: bucket(vars)?,
            secret,
        })
    }
}

impl Settings for LocalConfig {
    fn signer(self: Box<Self>, _: reqwest::Client, _: Sleep) -> Box<dyn Backend> {
        Box::new(TokenMinter::new(*self))
    }
}

/// What a token allows: Storage's `SIGNED_URL_SCOPE_DOWNLOAD` / `_UPLOAD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Download,
    Upload,
}

/// The claims, in the order jose writes them (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlClaims {
    /// `{bucket}/{path}`, not encoded.
    pub url: String,
    /// Upload tokens only: never overwrite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upsert: Option<bool>,
    pub scope: Scope,
    pub iat: u64,
    pub exp: u64,
}

/// Mints Storage's signed-URL tokens.
pub struct TokenMinter {
    config: LocalConfig,
    key: Hs256Key,
}

impl TokenMinter {
    pub fn new(config: LocalConfig) -> Self {
        let key = Hs256Key::new(config.secret.expose().as_bytes());
        Self { config, key }
    }

    /// A token for `{bucket}/{path}`, valid from `now` for `ttl_secs`.
    pub fn token(
        &self,
        bucket: &str,
        path: &str,
        scope: Scope,
        ttl_secs: u64,
        now: u64,
    ) -> Result<String, Error> {
        let claims = UrlClaims {
            url: format!("{bucket}/{path}"),
            upsert: (scope == Scope::Upload).then_some(false),
            scope,
            iat: now,
            exp: now.saturating_add(ttl_secs),
        };
        Hs256
            .token(&Header::empty(), &Claims::new(claims), &self.key)
            .map_err(|e| Error::internal(format!("storage-local: minting a token: {e}")))
    }

    pub fn sign(
        &self,
        path: &str,
        access: &Access,
        ttl_secs: u32,
        now: u64,
    ) -> Result<SignedUrl, Error> {
        let (bucket, base) = (&self.config.bucket, &self.config.url);
        let ttl = u64::from(ttl_secs);
        let expires_at = now.saturating_add(ttl);
        Ok(match access {
            Access::Download => {
                let token = self.token(bucket, path, Scope::Download, ttl, now)?;
                download(
                    object_url(base, "object/sign", bucket, path, &token),
                    expires_at,
                )
            }
            Access::Upload { content_type, .. } => {
                let token = self.token(bucket, path, Scope::Upload, ttl, now)?;
                upload(
                    object_url(base, "object/upload/sign", bucket, path, &token),
                    content_type,
                    expires_at,
                )
            }
        })
    }
}

impl Backend for TokenMinter {
    /// The same keys as hosted Storage: it is Storage that takes the upload.
    fn check_key(&self, path: &str) -> Result<(), Error> {
        check_key(path)
    }

    fn takes_download_param(&self) -> bool {
        true
    }

    fn sign_one<'a>(
        &'a self,
        path: &'a str,
        access: &'a Access,
        ttl: u32,
        now: u64,
    ) -> Signing<'a, SignedUrl> {
        Box::pin(std::future::ready(self.sign(path, access, ttl, now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jwt_compact::UntrustedToken;

    const SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters";
    const NOW: u64 = 1_700_000_000;

    fn minter(secret: &str) -> TokenMinter {
        let vars = [
            ("STORAGE_URL", "http://127.0.0.1:54321/storage/v1"),
            ("STORAGE_JWT_SECRET", secret),
        ];
        TokenMinter::new(LocalConfig::from_vars(&Vars(&vars)).unwrap())
    }

    /// What Storage reads from a verified token.
    #[derive(Debug, Deserialize)]
    struct Verified {
        url: String,
        scope: Option<Scope>,
        upsert: Option<bool>,
    }

    /// Storage's `verifyObjectSignature` and the scope checks of
    /// `src/internal/auth/jwt.ts`, in their order: signature (HS256 with the
    /// secret), scope for the route, `url` against `{bucket}/{path}`, then
    /// `exp * 1000 < Date.now()` is expired. (jwt-compact reads `exp` and
    /// `iat` into its own standard claims, not into `Verified`.)
    fn storage_verifies(
        token: &str,
        secret: &str,
        bucket: &str,
        path: &str,
        route: Scope,
        now: u64,
    ) -> Result<Verified, &'static str> {
        let untrusted = UntrustedToken::new(token).map_err(|_| "malformed")?;
        if untrusted.algorithm() != "HS256" {
            return Err("algorithm");
        }
        let key = Hs256Key::new(secret.as_bytes());
        let verified = Hs256
            .validator::<Verified>(&key)
            .validate(&untrusted)
            .map_err(|_| "signature")?;
        let claims = verified.claims();
        let custom = &claims.custom;
        let scoped = match (route, custom.scope) {
            (_, Some(scope)) => scope == route,
            (Scope::Upload, None) => custom.upsert.is_some(),
            (Scope::Download, None) => custom.upsert.is_none(),
        };
        if !scoped {
            return Err("scope");
        }
        if custom.url != format!("{bucket}/{path}") {
            return Err("url");
        }
        let exp = claims.expiration.ok_or("no exp")?.timestamp();
        if exp * 1000 < i64::try_from(now).map_err(|_| "now")? * 1000 {
            return Err("expired");
        }
        let (url, scope, upsert) = (custom.url.clone(), custom.scope, custom.upsert);
        Ok(Verified { url, scope, upsert })
    }

    #[test]
    fn tokens_are_byte_identical_to_what_storage_mints_with_jose() {
        // Made with jose 6.2.18 exactly as signObjectUrls and
        // signUploadObjectUrl do (service key, so no owner), with
        // iat 1700000000 and a 300 s lifetime.
        let cases = [
            (
                "t1/report (1).pdf",
                Scope::Download,
                "eyJhbGciOiJIUzI1NiJ9.eyJ1cmwiOiJhdHRhY2htZW50cy90MS9yZXBvcnQgKDEpLnBkZiIsInNjb3BlIjoiZG93bmxvYWQiLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMDMwMH0.oot1fpuzl8oN55eHrOQsh8d-OXTpcV7FVT4giegAu4A",
            ),
            (
                "t1/shot+1.png",
                Scope::Upload,
                "eyJhbGciOiJIUzI1NiJ9.eyJ1cmwiOiJhdHRhY2htZW50cy90MS9zaG90KzEucG5nIiwidXBzZXJ0IjpmYWxzZSwic2NvcGUiOiJ1cGxvYWQiLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMDMwMH0.yuvIH1Q3YI2N_5IwRCnYQ0Z2kGTeYSlPixDPqzpLgiA",
            ),
        ];
        let minter = minter(SECRET);
        for (path, scope, jose) in cases {
            let ours = minter.token("attachments", path, scope, 300, NOW).unwrap();
            assert_eq!(ours, jose, "{path}");
        }
    }

    #[test]
    fn storage_accepts_our_tokens_for_the_right_route_and_path() {
        let minter = minter(SECRET);
        let get = minter
            .sign("t1/a b+c.txt", &Access::Download, 300, NOW)
            .unwrap();
        assert_eq!(
            get.url.split("?token=").next(),
            Some("http://127.0.0.1:54321/storage/v1/object/sign/attachments/t1/a%20b%2Bc.txt")
        );
        assert_eq!(get.expires_at, NOW + 300);
        let token = get.url.split("?token=").nth(1).unwrap();
        let claims = storage_verifies(
            token,
            SECRET,
            "attachments",
            "t1/a b+c.txt",
            Scope::Download,
            NOW + 299,
        )
        .unwrap();
        assert_eq!(claims.url, "attachments/t1/a b+c.txt");

        let put = minter
            .sign(
                "t1/up.png",
                &Access::Upload {
                    content_type: "image/png".into(),
                    content_length: 5,
                },
                300,
                NOW,
            )
            .unwrap();
        assert!(put.url.starts_with(
            "http://127.0.0.1:54321/storage/v1/object/upload/sign/attachments/t1/up.png?token="
        ));
        assert_eq!(put.method, edge_core::Method::Put);
        let token = put.url.split("?token=").nth(1).unwrap();
        let claims = storage_verifies(
            token,
            SECRET,
            "attachments",
            "t1/up.png",
            Scope::Upload,
            NOW,
        )
        .unwrap();
        assert_eq!(claims.upsert, Some(false));
    }

    #[test]
    fn storage_rejects_tokens_for_anything_else() {
        let token = minter(SECRET)
            .token("attachments", "t1/a.txt", Scope::Download, 300, NOW)
            .unwrap();
        let other_secret = "another-secret-that-is-at-least-32-characters";
        let cases = [
            (
                "wrong path",
                SECRET,
                "attachments",
                "t1/b.txt",
                Scope::Download,
                NOW,
                "url",
            ),
            (
                "wrong bucket",
                SECRET,
                "avatars",
                "t1/a.txt",
                Scope::Download,
                NOW,
                "url",
            ),
            (
                "expired",
                SECRET,
                "attachments",
                "t1/a.txt",
                Scope::Download,
                NOW + 301,
                "expired",
            ),
            (
                "wrong secret",
                other_secret,
                "attachments",
                "t1/a.txt",
                Scope::Download,
                NOW,
                "signature",
            ),
            (
                "download token replayed as upload",
                SECRET,
                "attachments",
                "t1/a.txt",
                Scope::Upload,
                NOW,
                "scope",
            ),
        ];
        for (what, secret, bucket, path, route, now, expected) in cases {
            assert_eq!(
                storage_verifies(&token, secret, bucket, path, route, now).unwrap_err(),
                expected,
                "{what}"
            );
        }
        let upload = minter(SECRET)
            .token("attachments", "t1/a.txt", Scope::Upload, 300, NOW)
            .unwrap();
        assert_eq!(
            storage_verifies(
                &upload,
                SECRET,
                "attachments",
                "t1/a.txt",
                Scope::Download,
                NOW
            )
            .unwrap_err(),
            "scope",
            "upload token replayed as download"
        );
    }
}
