//! Signers for short-lived attachment URLs: one interface, three backends.
//!
//! A [`Signer`] turns an object path (in the private attachments bucket), an
//! expiry and what the client will do (download, or upload a file of a given
//! type and size) into a [`SignedUrl`]: the URL, the method, the headers the
//! client must send, and when the URL stops working. Which backend signs is
//! chosen by `ATTACHMENT_SIGNER`, one row of [`SIGNERS`] each:
//!
//! - `storage` (default): hosted Supabase Storage signs, over HTTP, with the
//!   service key ([`storage`]).
//! - `storage-local`: the same Storage URLs, but the token is minted here
//!   with Storage's JWT secret, no network call ([`storage_local`]); for
//!   self-hosted Storage whose secret we hold.
//! - `s3`: an AWS Signature Version 4 presigned URL for any S3-compatible
//!   store: Cloudflare R2, AWS S3, MinIO, Supabase's S3 endpoint ([`s3`]).
//!
//! A backend is its settings ([`Settings`], read from the environment) and
//! its signer ([`Backend`]: its own path rules, one URL, a batch of download
//! URLs); what every backend shares is done once, in [`Signer`].
//!
//! Whether the caller may see or attach this file is decided before a signer
//! is called (by the attachment row and its RLS policies); a signer only
//! signs. The clock is never read here: every call takes `now` in unix
//! seconds, because chrono's clock panics on wasm32-unknown-unknown and tests
//! need a fixed time.
//!
//! Expiry policy: `ATTACHMENT_URL_TTL_SECS` (default 300) is the lifetime
//! when the caller asks for none; it must lie in 1..=[`MAX_TTL_SECS`] or the
//! config is refused at start. A lifetime the caller asks for is clamped into
//! that range, never refused, and [`SignedUrl::expires_at`] always reports
//! the real expiry (for hosted Storage uploads, whose lifetime Storage fixes
//! itself, that is read back from Storage's token).
//!
//! Downloads that ask to be saved (`download: true`) get Storage's
//! `download` parameter, which Storage's token does not cover, so the
//! handler appends it to both Storage signers' URLs; an S3 URL would have to
//! sign `response-content-disposition`, which ours does not, so the s3
//! signer refuses it ([`Backend::takes_download_param`]).
//!
//! Left out: image transformations, `response-content-disposition` on S3
//! URLs, multipart/resumable (TUS) uploads, public buckets, and checking
//! that a downloaded object exists (hosted Storage does; the local and S3
//! signers cannot without a network call, so a missing object shows up as
//! the store's 404 when the client fetches it).

pub mod s3;
pub mod storage;
pub mod storage_local;

use edge_core::{ConfigError, Error, Method, Sleep, Vars};
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

/// The lifetime of a URL when the caller asks for none and
/// `ATTACHMENT_URL_TTL_SECS` is unset.
pub const DEFAULT_TTL_SECS: u32 = 300;

/// The longest lifetime any URL gets, whatever is configured or asked for.
/// An hour is enough to start a large upload on a slow line; anything longer
/// is a bearer link that outlives the permission check it was issued after.
pub const MAX_TTL_SECS: u32 = 3600;

/// At most this many paths per [`Signer::sign_downloads`] call (a ticket's
/// attachments, not a bucket listing).
pub const MAX_BATCH: usize = 100;

/// The longest object path accepted: S3's key limit, in UTF-8 bytes.
pub const MAX_PATH_BYTES: usize = 1024;

/// What the client will do with the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// `GET` the file.
    Download,
    /// `PUT` a new file. `content_type` is sent by the client (signed into
    /// the URL by S3; checked by Storage against the bucket's allowed types
    /// and by the database against the attachment row when the bytes
    /// arrive); `content_length` is signed into S3 URLs, so S3 refuses a
    /// body of any other size. Storage enforces the bucket's size limit as
    /// the upload streams in, and the database the row's size once stored.
    Upload {
        content_type: String,
        content_length: u64,
    },
}

/// A URL the client can use without further credentials until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignedUrl {
    /// Absolute URL, path percent-encoded.
    pub url: String,
    /// `GET` for downloads, `PUT` for uploads.
    #[serde(serialize_with = "method_name")]
    pub method: Method,
    /// Headers the request must carry, with lower-cased names. Browsers set
    /// `content-length` from the body themselves (they refuse to let a script
    /// set it); it is listed for other clients.
    pub headers: BTreeMap<String, String>,
    /// Unix seconds after which the store refuses the URL.
    pub expires_at: u64,
}

fn method_name<S: serde::Serializer>(method: &Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(method.as_str())
}

/// Every signer, by its `ATTACHMENT_SIGNER` name; the first is the default.
/// Adding a signer is one module (settings implementing [`Settings`], a
/// signer implementing [`Backend`]) and one row here.
pub const SIGNERS: &[Spec] = &[
    Spec {
        name: "storage",
        read: |vars| Ok(Box::new(storage::StorageConfig::from_vars(vars)?)),
    },
    Spec {
        name: "storage-local",
        read: |vars| Ok(Box::new(storage_local::LocalConfig::from_vars(vars)?)),
    },
    Spec {
        name: "s3",
        read: |vars| Ok(Box::new(s3::S3Config::from_vars(vars)?)),
    },
];

/// One row of [`SIGNERS`].
#[derive(Debug)]
pub struct Spec {
    /// Its `ATTACHMENT_SIGNER` value.
    pub name: &'static str,
    /// Reads its own variables (see its settings' `from_vars`).
    pub read: fn(&Vars<'_>) -> Result<Box<dyn Settings>, ConfigError>,
}

/// A signer's settings, read once per isolate. `Debug` shows no secret.
/// `Send + Sync` like the rest of the config, so a native host (the fuzz
/// targets) can keep one in a static.
pub trait Settings: std::fmt::Debug + Send + Sync {
    /// The signer these settings describe. `http` and `sleep` are for a
    /// signer that calls its store (the call and its timeout).
    fn signer(self: Box<Self>, http: reqwest::Client, sleep: Sleep) -> Box<dyn Backend>;
}

/// A signature under way: a call to the store, or (for a signer that signs
/// locally) ready at once.
pub type Signing<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + 'a>>;

/// What differs between signers. [`Signer`] does the rest: the lifetime,
/// the path and type rules every store shares, the batch bound, and each
/// path's own result in a batch. `Send + Sync` as [`Settings`] (the futures
/// it returns need not be: workerd runs one thread).
pub trait Backend: Send + Sync {
    /// This store's own rules for object paths, on top of [`check_path`]
    /// (422, field `path`).
    fn check_key(&self, _path: &str) -> Result<(), Error> {
        Ok(())
    }

    /// Whether a download URL may carry Storage's `download` parameter
    /// (`Content-Disposition: attachment`), which the handler appends
    /// unsigned. A signer that would have to sign it says no, and asking
    /// for it is refused rather than silently ignored.
    fn takes_download_param(&self) -> bool;

    /// One URL for a path that passed the checks, `ttl` seconds from `now`.
    fn sign_one<'a>(
        &'a self,
        path: &'a str,
        access: &'a Access,
        ttl: u32,
        now: u64,
    ) -> Signing<'a, SignedUrl>;

    /// Download URLs for paths that passed the checks: one result per path,
    /// in order; the outer error fails them all. By default one
    /// [`Backend::sign_one`] each.
    fn sign_download_batch<'a>(
        &'a self,
        paths: &'a [&'a str],
        ttl: u32,
        now: u64,
    ) -> Signing<'a, Vec<Result<SignedUrl, Error>>> {
        Box::pin(async move {
            let mut signed = Vec::with_capacity(paths.len());
            for path in paths {
                signed.push(self.sign_one(path, &Access::Download, ttl, now).await);
            }
            Ok(signed)
        })
    }
}

/// Signer settings, read once per isolate. `Debug` shows no secret.
#[derive(Debug)]
pub struct SignerConfig {
    /// `ATTACHMENT_URL_TTL_SECS`: lifetime when none is asked for
    /// (default [`DEFAULT_TTL_SECS`], at most [`MAX_TTL_SECS`]).
    pub ttl_secs: u32,
    name: &'static str,
    settings: Box<dyn Settings>,
}

impl SignerConfig {
    /// Reads `ATTACHMENT_SIGNER`, `ATTACHMENT_URL_TTL_SECS` and the chosen
    /// signer's variables (see each signer's `from_vars`).
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let ttl_secs = vars.parse_or("ATTACHMENT_URL_TTL_SECS", DEFAULT_TTL_SECS)?;
        if !(1..=MAX_TTL_SECS).contains(&ttl_secs) {
            return Err(ConfigError::new(
                "ATTACHMENT_URL_TTL_SECS",
                format!("must be between 1 and {MAX_TTL_SECS}"),
            ));
        }
        let spec = match vars.optional("ATTACHMENT_SIGNER") {
            None => &SIGNERS[0],
            Some(name) => SIGNERS
                .iter()
                .find(|spec| spec.name == name)
                .ok_or_else(|| ConfigError::new("ATTACHMENT_SIGNER", one_of_the_signers()))?,
        };
        Ok(Self {
            ttl_secs,
            name: spec.name,
            settings: (spec.read)(vars)?,
        })
    }

    /// The `ATTACHMENT_SIGNER` name of the chosen signer.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// "must be `storage`, `storage-local` or `s3`", from [`SIGNERS`].
fn one_of_the_signers() -> String {
    let names: Vec<String> = SIGNERS
        .iter()
        .map(|spec| format!("`{}`", spec.name))
        .collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => {
            format!("must be {} or {last}", rest.join(", "))
        }
        _ => format!("must be {}", names.concat()),
    }
}

/// The configured signer. Build once per isolate and reuse.
pub struct Signer {
    name: &'static str,
    ttl_secs: u32,
    backend: Box<dyn Backend>,
}

impl Signer {
    /// `http` and `sleep` are used only by a signer that calls its store
    /// (hosted Storage: the call and its timeout).
    pub fn new(config: SignerConfig, http: reqwest::Client, sleep: Sleep) -> Self {
        Self {
            name: config.name,
            ttl_secs: config.ttl_secs,
            backend: config.settings.signer(http, sleep),
        }
    }

    /// The `ATTACHMENT_SIGNER` name of this signer.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The lifetime a URL gets: the one asked for, else the configured
    /// default, clamped into 1..=[`MAX_TTL_SECS`].
    pub fn ttl_for(&self, requested: Option<u32>) -> u32 {
        requested.unwrap_or(self.ttl_secs).clamp(1, MAX_TTL_SECS)
    }

    /// Refuses a download that asks for the `download` parameter (422,
    /// field `download`) when this signer's URLs cannot carry it
    /// ([`Backend::takes_download_param`]).
    pub fn check_download_param(&self) -> Result<(), Error> {
        if self.backend.takes_download_param() {
            Ok(())
        } else {
            Err(Error::invalid(
                "download",
                format!("is not supported by the {} signer", self.name),
            ))
        }
    }

    /// Signs one URL for `path` (relative to the bucket, no leading `/`).
    ///
    /// Errors: 422 (`Validation`, field `path` or `content_type`) for a path
    /// or type no backend could sign; from hosted Storage also 404 (no such
    /// object, on download), 409 (an object already exists, on upload), 502
    /// (Storage failed) and 503 (unreachable or no answer in time). The
    /// bucket's type and size limits apply when the client uploads, not here.
    pub async fn sign(
        &self,
        path: &str,
        access: &Access,
        ttl: Option<u32>,
        now: u64,
    ) -> Result<SignedUrl, Error> {
        let ttl = self.ttl_for(ttl);
        check_path(path)?;
        if let Access::Upload { content_type, .. } = access {
            check_content_type(content_type)?;
        }
        self.backend.check_key(path)?;
        self.backend.sign_one(path, access, ttl, now).await
    }

    /// Signs download URLs for up to [`MAX_BATCH`] paths at once (one
    /// request to hosted Storage). The outer error is for the whole call;
    /// each path then has its own result, in the order given: a path that
    /// is invalid, or (hosted Storage only) names no object, is an error on
    /// its own without failing the others.
    pub async fn sign_downloads(
        &self,
        paths: &[&str],
        ttl: Option<u32>,
        now: u64,
    ) -> Result<Vec<Result<SignedUrl, Error>>, Error> {
        if paths.len() > MAX_BATCH {
            return Err(Error::invalid(
                "paths",
                format!("at most {MAX_BATCH} paths per request"),
            ));
        }
        let ttl = self.ttl_for(ttl);
        let checked: Vec<Result<(), Error>> = paths
            .iter()
            .map(|p| {
                check_path(p)?;
                self.backend.check_key(p)
            })
            .collect();
        let valid: Vec<&str> = paths
            .iter()
            .zip(&checked)
            .filter(|(_, c)| c.is_ok())
            .map(|(p, _)| *p)
            .collect();
        let mut signed = if valid.is_empty() {
            Vec::new()
        } else {
            self.backend.sign_download_batch(&valid, ttl, now).await?
        }
        .into_iter();
        Ok(checked
            .into_iter()
            .map(|c| match c {
                Ok(()) => signed.next().unwrap_or_else(|| {
                    Err(Error::internal(format!(
                        "{}: fewer answers than paths",
                        self.name
                    )))
                }),
                Err(e) => Err(e),
            })
            .collect())
    }
}

/// Rules every backend shares. Empty, `.` and `..` segments are refused
/// because browsers and URL libraries rewrite them (even percent-encoded:
/// the WHATWG URL parser treats `%2e%2e` as `..`), so the client would ask
/// for a different path than the one signed.
pub fn check_path(path: &str) -> Result<(), Error> {
    let problem = if path.is_empty() {
        Some("must not be empty")
    } else if path.len() > MAX_PATH_BYTES {
        Some("is longer than 1024 bytes")
    } else if path.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else if path
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        Some("must not start or end with `/`, or contain `//`, `.` or `..` segments")
    } else {
        None
    };
    match problem {
        Some(message) => Err(Error::invalid("path", message)),
        None => Ok(()),
    }
}

/// A media type the client can send as a header: `type/subtype`, optionally
/// with parameters, visible ASCII and spaces only.
fn check_content_type(content_type: &str) -> Result<(), Error> {
    let printable = content_type
        .bytes()
        .all(|b| b == b' ' || b.is_ascii_graphic());
    let shaped = content_type
        .split(';')
        .next()
        .and_then(|essence| essence.trim().split_once('/'))
        .is_some_and(|(t, s)| !t.is_empty() && !s.is_empty() && !s.contains('/'));
    if printable && shaped && content_type.len() <= 255 {
        Ok(())
    } else {
        Err(Error::invalid("content_type", "is not a media type"))
    }
}

/// Percent-encodes per AWS's `UriEncode`: every byte except the unreserved
/// `A-Z a-z 0-9 - _ . ~` becomes `%XX` (upper-case hex), and `/` is kept when
/// `keep_slash` (object key paths) or encoded (query values). Storage decodes
/// route parameters fully, so the same encoding serves its URLs.
/// <https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html>
pub fn uri_encode(input: &str, keep_slash: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(input.len());
    for &b in input.as_bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_testing::clock::never;

    const SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters";

    fn config(vars: &[(&str, &str)]) -> Result<SignerConfig, ConfigError> {
        let owned: Vec<(String, String)> = vars
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        SignerConfig::from_vars(&Vars(&owned))
    }

    #[test]
    fn each_signer_reads_its_own_variables() {
        let hosted = config(&[
            ("SUPABASE_URL", "https://abc.supabase.co/"),
            ("SUPABASE_SERVICE_ROLE_KEY", "sb_secret_xyz"),
        ])
        .unwrap();
        assert_eq!(hosted.name(), "storage");
        assert_eq!(hosted.ttl_secs, DEFAULT_TTL_SECS);

        let local = config(&[
            ("ATTACHMENT_SIGNER", "storage-local"),
            ("STORAGE_URL", "http://127.0.0.1:5000"),
            ("STORAGE_JWT_SECRET", SECRET),
            ("ATTACHMENT_URL_TTL_SECS", "60"),
        ])
        .unwrap();
        assert_eq!(local.name(), "storage-local");
        assert_eq!(local.ttl_secs, 60);

        let s3 = config(&[
            ("ATTACHMENT_SIGNER", "s3"),
            ("S3_ENDPOINT", "https://acct.r2.cloudflarestorage.com"),
            ("S3_REGION", "auto"),
            ("S3_BUCKET", "attachments"),
            ("S3_ACCESS_KEY_ID", "AKID"),
            ("S3_SECRET_ACCESS_KEY", "s3-secret-value"),
        ])
        .unwrap();
        assert_eq!(s3.name(), "s3");
    }

    #[test]
    fn bad_config_names_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("ATTACHMENT_SIGNER", "gcs")], "ATTACHMENT_SIGNER"),
            (
                &[("ATTACHMENT_URL_TTL_SECS", "7200")],
                "ATTACHMENT_URL_TTL_SECS",
            ),
            (
                &[("ATTACHMENT_URL_TTL_SECS", "0")],
                "ATTACHMENT_URL_TTL_SECS",
            ),
            (
                &[("ATTACHMENT_URL_TTL_SECS", "soon")],
                "ATTACHMENT_URL_TTL_SECS",
            ),
            (&[("SUPABASE_SERVICE_ROLE_KEY", "k")], "STORAGE_URL"),
            (
                &[("SUPABASE_URL", "https://abc.supabase.co")],
                "SUPABASE_SERVICE_ROLE_KEY",
            ),
            (
                &[
                    ("ATTACHMENT_SIGNER", "storage-local"),
                    ("SUPABASE_URL", "https://abc.supabase.co"),
                    ("STORAGE_JWT_SECRET", "short"),
                ],
                "STORAGE_JWT_SECRET",
            ),
            (
                &[
                    ("ATTACHMENT_SIGNER", "s3"),
                    ("S3_ENDPOINT", "https://s3.amazonaws.com"),
                    ("S3_REGION", "us-east-1"),
                    ("S3_BUCKET", "bucket"),
                    ("S3_ACCESS_KEY_ID", "AKID"),
                ],
                "S3_SECRET_ACCESS_KEY",
            ),
        ];
        for (vars, name) in cases {
            let err = config(vars).unwrap_err();
            assert_eq!(err.name, *name, "{vars:?}: {err}");
        }
        let unknown = config(&[("ATTACHMENT_SIGNER", "gcs")]).unwrap_err();
        assert_eq!(
            unknown.problem, "must be `storage`, `storage-local` or `s3`",
            "the choices, listed from SIGNERS"
        );
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let configs = [
            config(&[
                ("SUPABASE_URL", "https://abc.supabase.co"),
                ("SUPABASE_SERVICE_ROLE_KEY", "sb_secret_do-not-print"),
            ]),
            config(&[
                ("ATTACHMENT_SIGNER", "storage-local"),
                ("SUPABASE_URL", "https://abc.supabase.co"),
                (
                    "STORAGE_JWT_SECRET",
                    "do-not-print-do-not-print-do-not-print",
                ),
            ]),
            config(&[
                ("ATTACHMENT_SIGNER", "s3"),
                ("S3_ENDPOINT", "https://s3.amazonaws.com"),
                ("S3_REGION", "us-east-1"),
                ("S3_BUCKET", "bucket"),
                ("S3_ACCESS_KEY_ID", "AKID"),
                ("S3_SECRET_ACCESS_KEY", "do-not-print"),
            ]),
        ];
        for config in configs {
            let text = format!("{:?}", config.unwrap());
            assert!(!text.contains("do-not-print"), "{text}");
        }
    }

    #[test]
    fn only_storage_urls_take_the_download_parameter() {
        let signer = |vars: &[(&str, &str)]| {
            Signer::new(config(vars).unwrap(), reqwest::Client::new(), never)
        };
        let storage = signer(&[
            ("SUPABASE_URL", "https://abc.supabase.co"),
            ("SUPABASE_SERVICE_ROLE_KEY", "sb_secret_xyz"),
        ]);
        let local = signer(&[
            ("ATTACHMENT_SIGNER", "storage-local"),
            ("SUPABASE_URL", "https://abc.supabase.co"),
            ("STORAGE_JWT_SECRET", SECRET),
        ]);
        let s3 = signer(&[
            ("ATTACHMENT_SIGNER", "s3"),
            ("S3_ENDPOINT", "https://s3.amazonaws.com"),
            ("S3_REGION", "us-east-1"),
            ("S3_BUCKET", "bucket"),
            ("S3_ACCESS_KEY_ID", "AKID"),
            ("S3_SECRET_ACCESS_KEY", "s3-secret-value"),
        ]);
        assert!(storage.check_download_param().is_ok());
        assert!(local.check_download_param().is_ok());
        let Err(Error::Validation { errors }) = s3.check_download_param() else {
            panic!("the s3 signer takes no `download` parameter");
        };
        assert_eq!(
            errors,
            [edge_core::FieldError::new(
                "download",
                "is not supported by the s3 signer"
            )]
        );
    }

    #[test]
    fn lifetimes_default_then_clamp_to_the_hard_max() {
        let signer = Signer::new(
            config(&[
                ("ATTACHMENT_SIGNER", "storage-local"),
                ("SUPABASE_URL", "https://abc.supabase.co"),
                ("STORAGE_JWT_SECRET", SECRET),
                ("ATTACHMENT_URL_TTL_SECS", "120"),
            ])
            .unwrap(),
            reqwest::Client::new(),
            never,
        );
        for (requested, expected) in [
            (None, 120),
            (Some(30), 30),
            (Some(0), 1),
            (Some(MAX_TTL_SECS), MAX_TTL_SECS),
            (Some(86_400), MAX_TTL_SECS),
        ] {
            assert_eq!(signer.ttl_for(requested), expected, "{requested:?}");
        }
    }

    #[test]
    fn paths_browsers_would_rewrite_are_refused() {
        let refused = [
            "",
            "/leading",
            "trailing/",
            "a//b",
            "a/./b",
            "a/../b",
            "..",
            "tab\there",
            "new\nline",
        ];
        for path in refused {
            assert!(check_path(path).is_err(), "{path:?} should be refused");
        }
        assert!(check_path(&"x".repeat(MAX_PATH_BYTES + 1)).is_err());
        for path in [
            "a",
            "acct/ticket/file name (1).png",
            "ünï/cödé~+.txt",
            "a/.hidden/..x",
        ] {
            assert!(check_path(path).is_ok(), "{path:?} should pass");
        }
    }

    #[test]
    fn content_types_must_be_sendable_media_types() {
        for ok in ["image/png", "application/pdf", "text/plain; charset=utf-8"] {
            assert!(check_content_type(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "png",
            "image/",
            "/png",
            "a/b/c",
            "text/plain\r\nx: y",
            "tëxt/plain",
        ] {
            assert!(check_content_type(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn uri_encoding_keeps_only_unreserved_bytes_and_optionally_slash() {
        let cases = [
            ("a b+c", true, "a%20b%2Bc"),
            ("dir/file~_-.txt", true, "dir/file~_-.txt"),
            ("dir/file", false, "dir%2Ffile"),
            ("é", true, "%C3%A9"),
            ("100%", true, "100%25"),
            ("a=b&c?d#e", true, "a%3Db%26c%3Fd%23e"),
        ];
        for (input, keep_slash, expected) in cases {
            assert_eq!(uri_encode(input, keep_slash), expected, "{input}");
        }
    }

    #[tokio::test]
    async fn signed_urls_serialise_for_the_client() {
        let signer = Signer::new(
            config(&[
                ("ATTACHMENT_SIGNER", "storage-local"),
                ("STORAGE_URL", "http://127.0.0.1:5000/storage/v1"),
                ("STORAGE_JWT_SECRET", SECRET),
            ])
            .unwrap(),
            reqwest::Client::new(),
            never,
        );
        let upload = Access::Upload {
            content_type: "image/png".into(),
            content_length: 12,
        };
        let signed = signer
            .sign("a/b.png", &upload, None, 1_700_000_000)
            .await
            .unwrap();
        let json = serde_json::to_value(&signed).unwrap();
        assert_eq!(json["method"], "PUT");
        assert_eq!(json["headers"]["content-type"], "image/png");
        assert_eq!(json["expires_at"], 1_700_000_300);

        let err = signer.sign("a/../b", &upload, None, 0).await.unwrap_err();
        assert_eq!(err.status(), 422);
        let batch = signer
            .sign_downloads(&["ok.txt", "bad//path", "ünicode.txt"], None, 0)
            .await
            .unwrap();
        assert!(batch[0].is_ok());
        assert!(batch[1].is_err(), "invalid everywhere");
        assert!(batch[2].is_err(), "Storage refuses non-ASCII keys");
        let too_many = vec!["p"; MAX_BATCH + 1];
        assert!(signer.sign_downloads(&too_many, None, 0).await.is_err());
    }
}
