//! Hosted Supabase Storage signs the URLs, over HTTP, with the service key.
//!
//! Follows supabase/storage v1.70.6 (commit 4fa61fba9371c4bd40cbb81509f07bcb3af21683),
//! the routes under `src/http/routes/object/` and `src/storage/object.ts`:
//!
//! - downloads: `POST {STORAGE_URL}/object/sign/{bucket}` with
//!   `{"expiresIn": n, "paths": [...]}` answers
//!   `[{"path", "signedURL": "/object/sign/{bucket}/{path}?token=...", "error"}]`
//!   (`getSignedURLs.ts`, `signObjectUrls`). A path with no object gets
//!   `error` instead of a URL. We use this batch route even for one path: the
//!   single route (`POST /object/sign/{bucket}/{path}`, `getSignedURL.ts`)
//!   signs `decodeURI` of the raw request path, which leaves `%2B`, `%3F`,
//!   `%26` and friends encoded, so a key with `+`, `?` or `&` would get a
//!   token its own download route then rejects; the batch route takes the
//!   path from the JSON body and has no such problem.
//! - uploads: `POST {STORAGE_URL}/object/upload/sign/{bucket}/{path}` answers
//!   `{"url": "/object/upload/sign/{bucket}/{path}?token=...", "token"}`
//!   (`getSignedUploadURL.ts`, `signUploadObjectUrl`); the client then `PUT`s
//!   the file there (`uploadSignedObject.ts`). The sign request has an
//!   empty body and no `content-type`: Storage would take one as the
//!   object's type for its trial insert (the token binds only the path),
//!   and its JSON parser refuses an empty `application/json` body with a
//!   400. Type and size are checked where the bytes arrive instead: the
//!   bucket's `allowed_mime_types` and `file_size_limit`, and the database's
//!   check of the stored object against its `message_attachments` row.
//!
//! The returned URLs are Storage-relative and not percent-encoded; we keep
//! only the token and build the URL ourselves with [`super::uri_encode`].
//! Errors come back as `{"statusCode": "404", "error", "message"}`, mostly
//! with HTTP status 400 (`src/http/error-handler.ts`), so the body's
//! `statusCode` decides: 404 → [`Error::NotFound`], 409 → [`Error::Conflict`],
//! 413 and 415 → [`Error::Client`], an HTTP 5xx → [`Error::unavailable`],
//! anything else (and a success we cannot read) → [`Error::BadGateway`].
//! Unreachable, not done answering within `STORAGE_TIMEOUT_MS`, an answer
//! that breaks off or passes [`MAX_ANSWER_BYTES`] → [`Error::unavailable`]
//! (through [`edge_outbound::call`]).
//!
//! Left out: the upload URL's lifetime, which Storage fixes itself
//! (`UPLOAD_SIGNED_URL_EXPIRATION_TIME`, two hours on supabase.com); we
//! report it from the token's `exp`. Also `x-upsert` (uploads never
//! overwrite) and per-user `owner` (signing is done as the service, so
//! uploaded objects have no owner, as with any service-key upload).
//! API docs: <https://supabase.com/docs/reference/javascript/storage-from-createsignedurls>.

use super::{uri_encode, Access, Backend, Settings, SignedUrl, Signing};
use edge_core::{ConfigError, Error, Method, Sleep, Vars};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Hosted Storage settings. `Debug` omits the service key.
#[derive(Clone, Debug)]
pub struct StorageConfig {
    /// `STORAGE_URL`, or `${SUPABASE_URL}/storage/v1` when unset.
    pub url: String,
    /// `STORAGE_BUCKET`: the private bucket (default `attachments`).
    pub bucket: String,
    /// `SUPABASE_SERVICE_ROLE_KEY` (secret).
    service_key: edge_db::ServiceKey,
    /// `STORAGE_TIMEOUT_MS`: how long to wait for Storage (default 10000).
    pub timeout: Duration,
}

impl StorageConfig {
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            url: storage_url(vars)?,
            bucket: bucket(vars)?,
            service_key: edge_db::ServiceKey::from_vars(vars)?,
            timeout: Duration::from_millis(vars.parse_or("STORAGE_TIMEOUT_MS", 10_000u64)?),
        })
    }
}

impl Settings for StorageConfig {
    fn signer(self: Box<Self>, http: reqwest::Client, sleep: Sleep) -> Box<dyn Backend> {
        Box::new(HostedStorage::new(*self, http, sleep))
    }
}

/// `STORAGE_URL`, or `${SUPABASE_URL}/storage/v1`; shared with the local signer.
pub(crate) fn storage_url(vars: &Vars<'_>) -> Result<String, ConfigError> {
    vars.url_or("STORAGE_URL", || {
        vars.optional("SUPABASE_URL")
            .map(|base| format!("{}/storage/v1", base.trim_end_matches('/')))
    })
}

/// `STORAGE_BUCKET`, default `attachments`, checked with Storage's own rule
/// for bucket names.
pub(crate) fn bucket(vars: &Vars<'_>) -> Result<String, ConfigError> {
    let bucket = vars
        .optional("STORAGE_BUCKET")
        .unwrap_or_else(|| "attachments".to_owned());
    if bucket.len() <= 100 && !bucket.contains('/') && is_storage_key(&bucket) {
        Ok(bucket)
    } else {
        Err(ConfigError::new(
            "STORAGE_BUCKET",
            "is not a valid Storage bucket name",
        ))
    }
}

/// Storage's `VALID_OBJECT_KEY` (`src/storage/limits.ts`):
/// `^[A-Za-z0-9_/!.*'() &$=@;:+,?-]*$`, non-empty. Storage refuses any other
/// key on upload, so we refuse it before signing.
fn is_storage_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_/!.*'() &$=@;:+,?-".contains(&b))
}

/// The object-path rule both Storage signers apply on top of
/// [`super::check_path`].
pub(crate) fn check_key(path: &str) -> Result<(), Error> {
    if is_storage_key(path) {
        Ok(())
    } else {
        Err(Error::invalid(
            "path",
            "may contain only letters, digits, spaces, `/` and _!.*'()&$=@;:+,?-",
        ))
    }
}

/// `{base}/{route}/{bucket}/{path}?token={token}`, path percent-encoded.
/// Storage decodes route parameters fully before checking the token's `url`
/// claim against `{bucket}/{path}` (`verifyObjectSignature`).
pub(crate) fn object_url(base: &str, route: &str, bucket: &str, path: &str, token: &str) -> String {
    format!(
        "{base}/{route}/{}/{}?token={token}",
        uri_encode(bucket, false),
        uri_encode(path, true)
    )
}

/// The client's side of a download URL: a plain `GET`.
pub(crate) fn download(url: String, expires_at: u64) -> SignedUrl {
    SignedUrl {
        url,
        method: Method::Get,
        headers: BTreeMap::new(),
        expires_at,
    }
}

/// The client's side of an upload URL: `PUT` the raw file with its type
/// (`uploadSignedObject.ts` takes the body's `content-type` as the object's).
pub(crate) fn upload(url: String, content_type: &str, expires_at: u64) -> SignedUrl {
    SignedUrl {
        url,
        method: Method::Put,
        headers: BTreeMap::from([("content-type".to_owned(), content_type.to_owned())]),
        expires_at,
    }
}

/// The largest answer read: a batch of [`super::MAX_BATCH`] signed URLs,
/// each with a path of up to [`super::MAX_PATH_BYTES`] (twice: `path` and
/// the URL) and a token, stays well under it.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

#[derive(Deserialize)]
struct BatchItem {
    path: String,
    #[serde(rename = "signedURL")]
    signed_url: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct UploadAnswer {
    url: String,
    token: Option<String>,
}

/// Hosted Storage as a signer.
pub struct HostedStorage {
    config: StorageConfig,
    http: reqwest::Client,
    sleep: Sleep,
}

impl HostedStorage {
    pub fn new(config: StorageConfig, http: reqwest::Client, sleep: Sleep) -> Self {
        Self {
            config,
            http,
            sleep,
        }
    }

    /// One result per path, in order; a path Storage has no object for is
    /// [`Error::NotFound`].
    pub async fn sign_downloads(
        &self,
        paths: &[&str],
        ttl: u32,
        now: u64,
    ) -> Result<Vec<Result<SignedUrl, Error>>, Error> {
        let request = self
            .post(format!(
                "{}/object/sign/{}",
                self.config.url,
                uri_encode(&self.config.bucket, false)
            ))
            .json(&json!({ "expiresIn": ttl, "paths": paths }));
        let body = self.call(request).await?;
        let items: Vec<BatchItem> = serde_json::from_slice(&body)
            .map_err(|e| bad_gateway(format!("storage: unexpected sign answer ({e})")))?;
        if items.len() != paths.len() {
            return Err(bad_gateway(format!(
                "storage: {} answers for {} paths",
                items.len(),
                paths.len()
            )));
        }
        Ok(paths
            .iter()
            .zip(items)
            .map(|(path, item)| {
                if item.path != *path {
                    return Err(bad_gateway(format!(
                        "storage: answer for {:?} in place of {path:?}",
                        item.path
                    )));
                }
                match (item.signed_url, item.error) {
                    (Some(signed), None) => {
                        let token = token_of(&signed)?;
                        let expires_at = expiry_of(token).unwrap_or(now + u64::from(ttl));
                        Ok(download(
                            object_url(
                                &self.config.url,
                                "object/sign",
                                &self.config.bucket,
                                path,
                                token,
                            ),
                            expires_at,
                        ))
                    }
                    _ => Err(Error::NotFound),
                }
            })
            .collect())
    }

    /// An upload URL for a new object at `path`, for a client that will
    /// `PUT` a file of `content_type`; Storage refuses a path already taken.
    pub async fn sign_upload(&self, path: &str, content_type: &str) -> Result<SignedUrl, Error> {
        // No body and so no content-type (see the module docs).
        let request = self.post(format!(
            "{}/object/upload/sign/{}/{}",
            self.config.url,
            uri_encode(&self.config.bucket, false),
            uri_encode(path, true)
        ));
        let body = self.call(request).await?;
        let answer: UploadAnswer = serde_json::from_slice(&body)
            .map_err(|e| bad_gateway(format!("storage: unexpected upload-sign answer ({e})")))?;
        let token = match &answer.token {
            Some(token) => token.as_str(),
            None => token_of(&answer.url)?,
        };
        // Storage, not us, picks this lifetime; the token says what it is.
        let expires_at = expiry_of(token)
            .ok_or_else(|| bad_gateway("storage: upload token without a readable `exp`"))?;
        Ok(upload(
            object_url(
                &self.config.url,
                "object/upload/sign",
                &self.config.bucket,
                path,
                token,
            ),
            content_type,
            expires_at,
        ))
    }

    fn post(&self, url: String) -> reqwest::RequestBuilder {
        self.config
            .service_key
            .headers()
            .into_iter()
            .fold(self.http.post(url), |request, (name, value)| {
                request.header(name, value)
            })
    }

    /// Sends, waits at most `timeout` for the whole answer, reads at most
    /// [`MAX_ANSWER_BYTES`] of it, and sorts it.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, Error> {
        let bounds = edge_outbound::Bounds {
            timeout: self.config.timeout,
            max_body_bytes: MAX_ANSWER_BYTES,
        };
        let answer = edge_outbound::call(request, self.sleep, bounds)
            .await
            .map_err(|failure| failure.unavailable("storage"))?;
        if (200..300).contains(&answer.status) {
            Ok(answer.body)
        } else {
            Err(judge_failure(answer.status, &answer.body))
        }
    }
}

impl Backend for HostedStorage {
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
        Box::pin(async move {
            match access {
                // The batch route even for one path (see the module docs).
                Access::Download => {
                    let mut one = self.sign_downloads(&[path], ttl, now).await?;
                    one.pop().unwrap_or_else(|| {
                        Err(Error::internal("storage: empty answer for one path"))
                    })
                }
                Access::Upload { content_type, .. } => self.sign_upload(path, content_type).await,
            }
        })
    }

    fn sign_download_batch<'a>(
        &'a self,
        paths: &'a [&'a str],
        ttl: u32,
        now: u64,
    ) -> Signing<'a, Vec<Result<SignedUrl, Error>>> {
        Box::pin(self.sign_downloads(paths, ttl, now))
    }
}

/// Storage's error body carries the real status as a string in
/// `statusCode`; the HTTP status is usually just 400.
fn judge_failure(status: u16, body: &[u8]) -> Error {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = parsed["statusCode"]
        .as_str()
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or(status);
    let text = String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
    match code {
        404 => Error::NotFound,
        409 => Error::conflict("A file already exists at this path."),
        413 => Error::Client {
            status: 413,
            detail: "The file is larger than attachments may be.".to_owned(),
        },
        415 => Error::Client {
            status: 415,
            detail: "Attachments of this content type are not accepted.".to_owned(),
        },
        // Storage or what is in front of it is down: nothing was signed,
        // and a retry may well work.
        _ if status >= 500 => Error::unavailable(format!("storage answered {status}: {text}")),
        _ => bad_gateway(format!("storage answered {status}: {text}")),
    }
}

fn bad_gateway(reason: impl Into<String>) -> Error {
    Error::BadGateway {
        detail: "The file store could not sign the URL. Retry later.".to_owned(),
        reason: reason.into(),
    }
}

/// The `token` query parameter of a Storage-relative signed URL. Storage
/// does not encode the path it puts before `?token=`, and a key may itself
/// contain `?`, `&` or even `token=`; the token is always appended last.
fn token_of(signed: &str) -> Result<&str, Error> {
    signed
        .rsplit_once("token=")
        .filter(|(head, _)| head.ends_with('?') || head.ends_with('&'))
        .and_then(|(_, tail)| tail.split('&').next())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad_gateway(format!("storage: signed URL without a token: {signed}")))
}

/// The `exp` claim of a token, read without verifying it: we only report
/// it, Storage is the one that checks.
fn expiry_of(token: &str) -> Option<u64> {
    let claims = jwt_compact::UntrustedToken::new(token)
        .ok()?
        .deserialize_claims_unchecked::<jwt_compact::Empty>()
        .ok()?;
    u64::try_from(claims.expiration?.timestamp()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::storage_local::{LocalConfig, Scope, TokenMinter};
    use crate::sign::{Access, Signer, SignerConfig};
    use edge_testing::clock::{instant, tokio_sleep};
    use edge_testing::server::{Recorded, Reply, Server};
    use edge_testing::vars;
    use std::sync::Arc;

    const SECRET: &str = "stub-storage-secret-at-least-32-characters";
    const NOW: u64 = 1_700_000_000;

    /// Storage's two signing routes, as supabase/storage documents them.
    #[derive(Clone)]
    struct Stub {
        minter: Arc<TokenMinter>,
        /// Paths with an object; others get the per-path error.
        existing: &'static [&'static str],
        /// Answer every call with this status and body instead.
        fail: Option<(u16, &'static str)>,
    }

    impl Stub {
        /// Routes as Storage's router does: `POST /storage/v1/object/sign/{bucket}`
        /// and `POST /storage/v1/object/upload/sign/{bucket}/{*path}`.
        fn answer(&self, request: &Recorded) -> Reply {
            let path = request.path_decoded();
            if request.method != "POST" {
                return Reply::status(405);
            }
            if let Some(bucket) = path.strip_prefix("/storage/v1/object/sign/") {
                if !bucket.contains('/') {
                    return self.sign_batch(bucket, request);
                }
            }
            match path
                .strip_prefix("/storage/v1/object/upload/sign/")
                .and_then(|rest| rest.split_once('/'))
            {
                Some((bucket, path)) if !path.is_empty() => self.sign_upload(bucket, path, request),
                _ => Reply::status(404),
            }
        }

        fn failure(&self) -> Option<Reply> {
            self.fail
                .map(|(status, body)| Reply::json(status, &serde_json::from_str(body).unwrap()))
        }

        // getSignedURLs.ts / signObjectUrls, as documented.
        fn sign_batch(&self, bucket: &str, request: &Recorded) -> Reply {
            let body = request.json();
            if let Some(fail) = self.failure() {
                return fail;
            }
            let expires_in = body["expiresIn"].as_u64().unwrap();
            let items: Vec<Value> = body["paths"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let path = p.as_str().unwrap();
                    if self.existing.contains(&path) {
                        let token = self.minter.token(bucket, path, Scope::Download, expires_in, NOW).unwrap();
                        json!({"error": null, "path": path,
                               "signedURL": format!("/object/sign/{bucket}/{path}?token={token}")})
                    } else {
                        json!({"error": "Either the object does not exist or you do not have access to it",
                               "path": path, "signedURL": null})
                    }
                })
                .collect();
            Reply::json(200, &Value::Array(items))
        }

        // getSignedUploadURL.ts / signUploadObjectUrl, as documented: the
        // lifetime is Storage's own (UPLOAD_SIGNED_URL_EXPIRATION_TIME).
        fn sign_upload(&self, bucket: &str, path: &str, request: &Recorded) -> Reply {
            // Storage's fastify reads an `application/json` body with its
            // default JSON parser, which refuses an empty one
            // (FST_ERR_CTP_EMPTY_JSON_BODY), answered by src/http/error-handler.ts
            // as below; any other type goes to a catch-all parser (src/app.ts)
            // that reads nothing.
            let json = request
                .header("content-type")
                .and_then(|t| t.split(';').next())
                .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
            if json && request.body.is_empty() {
                return Reply::json(
                    400,
                    &json!({"statusCode": "400", "error": "FastifyError", "code": "InvalidRequest",
                            "message": "Body cannot be empty when content-type is set to 'application/json'"}),
                );
            }
            if let Some(fail) = self.failure() {
                return fail;
            }
            let token = self
                .minter
                .token(bucket, path, Scope::Upload, 7200, NOW)
                .unwrap();
            Reply::json(
                200,
                &json!({"url": format!("/object/upload/sign/{bucket}/{path}?token={token}"),
                        "token": token}),
            )
        }
    }

    /// The stub on a free local port, recording every request; Storage's
    /// base URL on it is `{url}/storage/v1`.
    async fn start(stub: Stub) -> Server {
        Server::start(move |request| stub.answer(request)).await
    }

    fn base_url(server: &Server) -> String {
        format!("{}/storage/v1", server.url())
    }

    /// The last request the stub saw.
    fn seen(server: &Server) -> Recorded {
        server.requests().pop().expect("a request to the stub")
    }

    fn stub(existing: &'static [&'static str], fail: Option<(u16, &'static str)>) -> Stub {
        let vars = [
            ("STORAGE_URL", "http://unused"),
            ("STORAGE_JWT_SECRET", SECRET),
        ];
        Stub {
            minter: Arc::new(TokenMinter::new(
                LocalConfig::from_vars(&Vars(&vars)).unwrap(),
            )),
            existing,
            fail,
        }
    }

    fn signer(url: &str, key: &str) -> Signer {
        signer_from(
            &vars::of(&[("STORAGE_URL", url), ("SUPABASE_SERVICE_ROLE_KEY", key)]),
            tokio_sleep,
        )
    }

    /// The signer `vars` configure, its calls bounded on `sleep`.
    fn signer_from(vars: &vars::Builder, sleep: Sleep) -> Signer {
        Signer::new(
            SignerConfig::from_vars(&vars.vars()).unwrap(),
            reqwest::Client::new(),
            sleep,
        )
    }

    #[tokio::test]
    async fn downloads_are_signed_in_one_batch_with_the_service_key() {
        let server = start(stub(&["t1/report.pdf", "t1/a+b & c?.txt"], None)).await;
        let url = base_url(&server);
        let signer = signer(&url, "eyJ.legacy.jwt");

        let results = signer
            .sign_downloads(
                &["t1/report.pdf", "t1/missing.pdf", "t1/a+b & c?.txt"],
                Some(60),
                NOW,
            )
            .await
            .unwrap();
        let first = results[0].as_ref().unwrap();
        assert!(first.url.starts_with(&format!(
            "{url}/object/sign/attachments/t1/report.pdf?token=ey"
        )));
        assert_eq!(first.method, Method::Get);
        assert!(first.headers.is_empty());
        assert_eq!(first.expires_at, NOW + 60);
        assert!(matches!(results[1], Err(Error::NotFound)));
        let odd = results[2].as_ref().unwrap();
        assert!(
            odd.url
                .contains("/attachments/t1/a%2Bb%20%26%20c%3F.txt?token="),
            "{}",
            odd.url
        );

        let seen = seen(&server);
        assert_eq!(seen.header("apikey"), Some("eyJ.legacy.jwt"));
        assert_eq!(seen.header("authorization"), Some("Bearer eyJ.legacy.jwt"));
        assert_eq!(
            seen.json(),
            json!({"expiresIn": 60,
                   "paths": ["t1/report.pdf", "t1/missing.pdf", "t1/a+b & c?.txt"]})
        );
    }

    #[tokio::test]
    async fn upload_urls_sign_for_every_type_json_included() {
        // The empty sign request carries no type: Storage would refuse an
        // empty `application/json` one, and the type is checked where the
        // bytes arrive (the bucket, and the store's trigger against the row).
        for content_type in [
            "application/json",
            "application/json; charset=utf-8",
            "image/png",
        ] {
            let server = start(stub(&[], None)).await;
            let url = base_url(&server);
            let access = Access::Upload {
                content_type: content_type.into(),
                content_length: 2,
            };
            let signed = signer(&url, "k")
                .sign("t1/data.json", &access, None, NOW)
                .await
                .unwrap_or_else(|e| panic!("{content_type}: {e}"));
            assert_eq!(
                signed.headers.get("content-type").map(String::as_str),
                Some(content_type),
                "the client still sends its file's type with the PUT"
            );
            assert_eq!(seen(&server).header("content-type"), None, "{content_type}");
        }
    }

    #[tokio::test]
    async fn uploads_list_the_content_type_and_report_storages_own_expiry() {
        let server = start(stub(&[], None)).await;
        let url = base_url(&server);
        let signer = signer(&url, "sb_secret_abc");
        let access = Access::Upload {
            content_type: "image/png".into(),
            content_length: 2048,
        };

        let signed = signer
            .sign("t1/shot 1.png", &access, Some(60), NOW)
            .await
            .unwrap();
        assert!(signed.url.starts_with(&format!(
            "{url}/object/upload/sign/attachments/t1/shot%201.png?token=ey"
        )));
        assert_eq!(signed.method, Method::Put);
        assert_eq!(
            signed.headers.get("content-type").map(String::as_str),
            Some("image/png")
        );
        assert_eq!(
            signed.expires_at,
            NOW + 7200,
            "Storage's lifetime, not ours"
        );

        let seen = seen(&server);
        assert_eq!(
            seen.path_decoded()
                .strip_prefix("/storage/v1/object/upload/sign/attachments/"),
            Some("t1/shot 1.png")
        );
        assert_eq!(seen.header("apikey"), Some("sb_secret_abc"));
        assert_eq!(
            seen.header("authorization"),
            None,
            "an sb_secret_ key is never a bearer"
        );
    }

    #[tokio::test]
    async fn storage_errors_map_to_the_projects_errors() {
        let cases: [(u16, &str, u16); 6] = [
            (
                500,
                r#"{"statusCode":"500","error":"internal","message":"db down"}"#,
                503,
            ),
            (503, r#"{"message":"upstream"}"#, 503),
            (
                400,
                r#"{"statusCode":"500","error":"internal","message":"db down"}"#,
                502,
            ),
            (
                400,
                r#"{"statusCode":"403","error":"Unauthorized","message":"invalid signature"}"#,
                502,
            ),
            (
                400,
                r#"{"statusCode":"409","error":"Duplicate","message":"The resource already exists"}"#,
                409,
            ),
            (
                400,
                r#"{"statusCode":"415","error":"invalid_mime_type","message":"mime type not supported"}"#,
                415,
            ),
        ];
        let access = Access::Upload {
            content_type: "image/png".into(),
            content_length: 1,
        };
        for (status, body, expected) in cases {
            let server = start(stub(&[], Some((status, body)))).await;
            let url = base_url(&server);
            let err = signer(&url, "k")
                .sign("a.png", &access, None, NOW)
                .await
                .unwrap_err();
            assert_eq!(err.status(), expected, "{status} {body}: {err}");
        }
        let server = start(stub(
            &[],
            Some((
                400,
                r#"{"statusCode":"404","error":"not_found","message":"Object not found"}"#,
            )),
        ))
        .await;
        let url = base_url(&server);
        let err = signer(&url, "k")
            .sign("a.png", &Access::Download, None, NOW)
            .await
            .unwrap_err();
        assert_eq!(err.status(), 404);
    }

    #[tokio::test]
    async fn a_refused_connection_is_503() {
        let (url, _socket) = edge_testing::server::refused_url().unwrap();
        let err = signer(&url, "k")
            .sign("a.png", &Access::Download, None, NOW)
            .await
            .unwrap_err();
        assert_eq!(err.status(), 503, "{err}");
    }

    #[tokio::test]
    async fn storage_that_does_not_answer_in_time_is_503() {
        let silent = edge_testing::server::silent().await;
        let signer = signer_from(
            &vars::of(&[
                ("STORAGE_URL", silent.url()),
                ("SUPABASE_SERVICE_ROLE_KEY", "k"),
            ]),
            instant,
        );
        let err = signer
            .sign("a.png", &Access::Download, None, NOW)
            .await
            .unwrap_err();
        assert_eq!(err.status(), 503);
    }

    /// Issue 12: Storage answering huge, slowly, cut short or 5xx is a
    /// 503 within the timeout (malformed: 502), and nothing is signed. Seen
    /// failing before `edge-outbound`: the 32 MB answer (a valid one padded
    /// with whitespace) was read whole and the URL signed.
    #[tokio::test]
    async fn storage_failing_in_every_way_is_a_bounded_error() {
        use edge_testing::stubs::{self, Fault};
        let stub = stubs::storage(0).await.unwrap();
        let url = format!("{}/storage/v1", stub.url());
        let signer = signer_from(
            &vars::of(&[
                ("STORAGE_URL", url.as_str()),
                ("SUPABASE_SERVICE_ROLE_KEY", "k"),
                ("STORAGE_TIMEOUT_MS", "500"),
            ]),
            tokio_sleep,
        );
        let access = Access::Upload {
            content_type: "image/png".into(),
            content_length: 1,
        };
        signer
            .sign("a/normal.png", &access, None, NOW)
            .await
            .expect("the normal answer signs");
        for fault in &Fault::ALL[1..] {
            let path = format!("a/fault-{}.png", fault.name());
            let started = std::time::Instant::now();
            for got in [
                signer.sign(&path, &access, None, NOW).await,
                signer.sign(&path, &Access::Download, None, NOW).await,
            ] {
                let expected = if *fault == Fault::Malformed { 502 } else { 503 };
                assert_eq!(
                    got.map_err(|e| e.status()),
                    Err(expected),
                    "{}",
                    fault.name()
                );
            }
            assert!(
                started.elapsed() < Duration::from_millis(2500),
                "{}: {:?}",
                fault.name(),
                started.elapsed()
            );
        }
    }

    #[test]
    fn tokens_are_taken_from_storage_relative_urls() {
        assert_eq!(
            token_of("/object/sign/b/p?token=abc.def.ghi").unwrap(),
            "abc.def.ghi"
        );
        assert_eq!(token_of("/object/sign/b/p?x=1&token=t").unwrap(), "t");
        assert_eq!(
            token_of("/object/sign/b/a?token=x&y.txt?token=real").unwrap(),
            "real"
        );
        assert!(token_of("/object/sign/b/p").is_err());
        assert!(token_of("/object/sign/b/p?token=").is_err());
    }
}
