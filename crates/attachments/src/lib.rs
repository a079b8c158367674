//! Attachment URLs: short-lived signed download and upload URLs for files on
//! ticket messages, only for users row-level security lets see them.
//!
//! The function never decides access itself. It asks PostgREST **as the
//! caller** (their JWT): `message_attachments` rows they cannot see simply
//! do not come back, and an attachment row they may not create is refused
//! by the insert policy. Only then does a [`sign::Signer`] sign, so the file
//! itself never passes through the function.
//!
//! - `POST /attachments/sign` `{ids, expires_in?}`: one PostgREST request
//!   for every id; one entry per id, a URL or a 404 that looks the same for
//!   ids that exist but are hidden and ids that do not exist.
//! - `POST /attachments/upload-url` `{message_id, file_name, content_type,
//!   size}`: validated, the object path generated here (never taken from the
//!   client), the row inserted as the caller, then a signed upload URL.

pub mod sign;

use edge_auth::{AuthenticatedUser, JwtConfig, Policy, Verifier};
use edge_core::{
    ConfigError, Error, FieldError, HttpConfig, Method, Request, Response, Service, Sleep, Vars,
};
use edge_db::{PostgrestConfig, ServiceDb, ServiceKey, UserDb};
use serde::Deserialize;
use serde_json::{json, Value};
use sign::{Access, Signer, SignerConfig};

pub const NAME: &str = "attachment-urls";

/// The schema's own bound (`message_attachments.size_bytes`).
const SCHEMA_MAX_BYTES: u64 = 50 * 1024 * 1024;

/// What uploads may be, read once.
#[derive(Debug, Clone)]
pub struct UploadLimits {
    /// `ATTACHMENT_MAX_BYTES`: the largest upload (default 10 MiB, at most 50 MiB).
    pub max_bytes: u64,
    /// `ATTACHMENT_CONTENT_TYPES`: comma-separated allowed media types
    /// (default: common images, PDF and plain text).
    pub content_types: Vec<String>,
}

impl UploadLimits {
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let max_bytes = vars.parse_or("ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024u64)?;
        if !(1..=SCHEMA_MAX_BYTES).contains(&max_bytes) {
            return Err(ConfigError::new(
                "ATTACHMENT_MAX_BYTES",
                "must be between 1 and 52428800",
            ));
        }
        let mut content_types = vars.list("ATTACHMENT_CONTENT_TYPES");
        if content_types.is_empty() {
            content_types = [
                "image/png",
                "image/jpeg",
                "image/gif",
                "image/webp",
                "application/pdf",
                "text/plain",
            ]
            .map(str::to_owned)
            .to_vec();
        }
        Ok(Self {
            max_bytes,
            content_types,
        })
    }
}

pub struct AttachmentUrls {
    http: HttpConfig,
    postgrest: PostgrestConfig,
    service_db: ServiceDb,
    verifier: Verifier,
    signer: Signer,
    limits: UploadLimits,
    now: fn() -> i64,
}

impl AttachmentUrls {
    /// Reads the config once; see the README's table of variables.
    pub fn from_vars(vars: &Vars<'_>, sleep: Sleep, now: fn() -> i64) -> Result<Self, Error> {
        let postgrest = PostgrestConfig::from_vars(vars, sleep)?;
        let http = reqwest::Client::new();
        Ok(Self {
            http: HttpConfig::from_vars(vars)?,
            service_db: ServiceDb::new(&postgrest, &ServiceKey::from_vars(vars)?),
            postgrest,
            verifier: Verifier::new(JwtConfig::from_vars(vars)?, http.clone(), sleep),
            signer: Signer::new(SignerConfig::from_vars(vars)?, http, sleep),
            limits: UploadLimits::from_vars(vars)?,
            now,
        })
    }

    async fn user(&self, req: &Request) -> Result<AuthenticatedUser, Error> {
        self.verifier
            .authenticate(req, (self.now)(), Policy::User)
            .await
    }

    fn now_secs(&self) -> u64 {
        u64::try_from((self.now)()).unwrap_or_default()
    }

    async fn sign_downloads(&self, req: &Request) -> Result<Response, Error> {
        let user = self.user(req).await?;
        let body = read_download_request(req)?;
        let ids = &body.ids;
        // Storage sets `Content-Disposition: attachment` from its `download`
        // parameter, which its token does not cover; an S3 presigned URL
        // would have to sign `response-content-disposition`, which ours does
        // not, so there it is refused rather than silently ignored.
        if body.download && self.signer.kind() == sign::Kind::S3 {
            return Err(Error::invalid(
                "download",
                "is not supported by the s3 signer",
            ));
        }

        // One request for the whole batch; RLS leaves out what the caller
        // may not see.
        let db = UserDb::new(&self.postgrest, &user);
        let rows: Vec<Visible> = db
            .execute(
                db.from("message_attachments")
                    .select("id,object_path,file_name")
                    .in_(
                        "id",
                        ids.iter().map(|id| id.to_string()).collect::<Vec<_>>(),
                    ),
            )
            .await?;

        let visible: Vec<&Visible> = ids
            .iter()
            .filter_map(|id| rows.iter().find(|r| r.id == *id))
            .collect();
        let paths: Vec<&str> = visible.iter().map(|r| r.object_path.as_str()).collect();
        let signed = if paths.is_empty() {
            Vec::new()
        } else {
            self.signer
                .sign_downloads(&paths, body.expires_in, self.now_secs())
                .await?
        };

        let entries: Vec<Value> = ids
            .iter()
            .map(|id| {
                let found = visible.iter().position(|r| r.id == *id);
                match found.and_then(|i| signed.get(i)) {
                    Some(Ok(url)) => {
                        let mut href = url.url.clone();
                        if body.download {
                            let name = found.map(|i| visible[i].file_name.as_str()).unwrap_or_default();
                            href.push_str(&format!("&download={}", sign::uri_encode(name, false)));
                        }
                        json!({"id": id, "url": href, "method": url.method.as_str(), "expires_at": url.expires_at})
                    }
                    Some(Err(err)) if err.status() != 404 => {
                        json!({"id": id, "error": {"status": err.status(), "code": err.code()}})
                    }
                    _ => json!({"id": id, "error": {"status": 404, "code": "not_found"}}),
                }
            })
            .collect();
        Response::json(200, &json!({ "urls": entries }))
    }

    async fn upload_url(&self, req: &Request) -> Result<Response, Error> {
        let user = self.user(req).await?;
        let upload = read_upload_request(req, &self.limits)?;
        let db = UserDb::new(&self.postgrest, &user);

        // The message as the caller sees it: none means no such message, or
        // one they may not see; both are the same 404.
        let messages: Vec<Value> = db
            .execute(
                db.from("messages")
                    .select("id,tickets(account_id)")
                    .eq("id", upload.message_id.to_string()),
            )
            .await?;
        let account_id = messages
            .first()
            .and_then(|m| m["tickets"]["account_id"].as_str())
            .ok_or(Error::NotFound)?
            .to_owned();

        let attachment_id = uuid::Uuid::new_v4();
        let object_path = object_path(
            &account_id,
            upload.message_id,
            uuid::Uuid::new_v4(),
            &upload.file_name,
        );
        // The insert policy decides whether the caller may attach here (a
        // support reply they wrote: 403 otherwise), and the table's
        // triggers whether the bucket takes this type and size (422).
        db.execute::<Value>(
            db.from("message_attachments").insert(
                json!({
                    "id": attachment_id,
                    "message_id": upload.message_id,
                    "object_path": object_path,
                    "file_name": upload.file_name,
                    "content_type": upload.content_type,
                    "size_bytes": upload.size,
                    "created_by": user.user_id(),
                })
                .to_string(),
            ),
        )
        .await?;

        let access = Access::Upload {
            content_type: upload.content_type.clone(),
            content_length: upload.size,
        };
        let signed = match self
            .signer
            .sign(&object_path, &access, None, self.now_secs())
            .await
        {
            Ok(signed) => signed,
            Err(err) => {
                // No URL, so no file will come: take the row back (as the
                // service; users cannot delete without tickets.delete).
                let _ = self
                    .service_db
                    .execute::<Value>(
                        self.service_db
                            .from("message_attachments")
                            .delete()
                            .eq("id", attachment_id.to_string()),
                    )
                    .await;
                return Err(err);
            }
        };
        Response::json(
            201,
            &json!({
                "attachment_id": attachment_id,
                "object_path": object_path,
                "url": signed.url,
                "method": signed.method.as_str(),
                "headers": signed.headers,
                "expires_at": signed.expires_at,
            }),
        )
    }
}

/// The body of `POST /attachments/sign`, read and validated: what the
/// handler acts on (and what the fuzz target `attachments_sign` checks).
#[derive(Debug)]
pub struct DownloadRequest {
    /// Distinct, in the order asked; 1 to [`sign::MAX_BATCH`].
    pub ids: Vec<uuid::Uuid>,
    pub expires_in: Option<u32>,
    pub download: bool,
}

/// Reads `POST /attachments/sign`'s JSON body: 415/400 for a body that is
/// not JSON of this shape, 422 for ids that are not UUIDs or too many.
pub fn read_download_request(req: &Request) -> Result<DownloadRequest, Error> {
    let body: SignRequest = req.json()?;
    Ok(DownloadRequest {
        ids: validate_ids(&body.ids)?,
        expires_in: body.expires_in,
        download: body.download,
    })
}

#[derive(Deserialize)]
struct SignRequest {
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default, deserialize_with = "integer")]
    expires_in: Option<u32>,
    /// Ask the browser to save the file (under its original name) rather
    /// than display it.
    #[serde(default)]
    download: bool,
}

#[derive(Deserialize)]
struct Visible {
    id: uuid::Uuid,
    object_path: String,
    file_name: String,
}

fn validate_ids(ids: &[String]) -> Result<Vec<uuid::Uuid>, Error> {
    let mut errors = Vec::new();
    if ids.is_empty() {
        errors.push(FieldError::new("ids", "give at least one attachment id"));
    }
    if ids.len() > sign::MAX_BATCH {
        errors.push(FieldError::new(
            "ids",
            format!("at most {} ids at once", sign::MAX_BATCH),
        ));
    }
    let mut parsed = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        match uuid::Uuid::parse_str(id) {
            Ok(id) if !parsed.contains(&id) => parsed.push(id),
            Ok(_) => {}
            Err(_) => errors.push(FieldError::new(format!("ids[{i}]"), "is not a UUID")),
        }
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(Error::Validation { errors })
    }
}

#[derive(Deserialize)]
struct RawUpload {
    message_id: Option<String>,
    file_name: Option<String>,
    content_type: Option<String>,
    #[serde(default, deserialize_with = "integer")]
    size: Option<u64>,
}

/// A JSON number that is a whole number, `10` or `10.0` alike: JSON Schema's
/// `integer` (what `openapi.yaml` declares) includes `10.0`, serde's `u64`
/// does not, so clients that write numbers as floats (JavaScript's
/// `JSON.stringify(10.0)` does not, others do) got a 400 for valid data.
/// Fractions, negatives and values past `T` stay errors (400).
fn integer<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error as _;
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(f))
            .map(|f| f as u64)
    });
    whole
        .and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("expected a whole number in range, got {number}")))
}

/// The body of `POST /attachments/upload-url`, every field checked.
#[derive(Debug)]
pub struct Upload {
    pub message_id: uuid::Uuid,
    /// The user's own name, trimmed: a plain name, no path, no control
    /// characters. Kept in the row; the object path gets
    /// [`object_path`]'s reduced form.
    pub file_name: String,
    /// Lower-cased, one of the configured types.
    pub content_type: String,
    pub size: u64,
}

/// Reads `POST /attachments/upload-url`'s JSON body: 415/400 for a body that
/// is not JSON of this shape, 422 listing every invalid field.
pub fn read_upload_request(req: &Request, limits: &UploadLimits) -> Result<Upload, Error> {
    validate_upload(req.json()?, limits)
}

/// Where an upload's bytes go: `<account>/<message>/<object>/<safe name>`.
/// Built here, never taken from the client, so it stays under the account's
/// and message's prefix whatever the file is called.
pub fn object_path(
    account_id: &str,
    message_id: uuid::Uuid,
    object_id: uuid::Uuid,
    file_name: &str,
) -> String {
    format!(
        "{account_id}/{message_id}/{object_id}/{}",
        safe_object_name(file_name)
    )
}

fn validate_upload(raw: RawUpload, limits: &UploadLimits) -> Result<Upload, Error> {
    let mut errors = Vec::new();
    let message_id = raw
        .message_id
        .as_deref()
        .and_then(|s| uuid::Uuid::parse_str(s).ok());
    if message_id.is_none() {
        errors.push(FieldError::new(
            "message_id",
            "must be the UUID of a message",
        ));
    }
    let file_name = raw.file_name.unwrap_or_default().trim().to_owned();
    if file_name.is_empty() || file_name.chars().count() > 255 {
        errors.push(FieldError::new("file_name", "must be 1 to 255 characters"));
    } else if file_name.contains(['/', '\\']) || file_name == "." || file_name.contains("..") {
        errors.push(FieldError::new(
            "file_name",
            "must be a plain file name, not a path",
        ));
    } else if file_name.chars().any(char::is_control) {
        errors.push(FieldError::new(
            "file_name",
            "must not contain control characters",
        ));
    }
    let content_type = raw
        .content_type
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if !limits
        .content_types
        .iter()
        .any(|t| t.eq_ignore_ascii_case(&content_type))
    {
        errors.push(FieldError::new(
            "content_type",
            format!("must be one of: {}", limits.content_types.join(", ")),
        ));
    }
    match raw.size {
        Some(size) if (1..=limits.max_bytes).contains(&size) => {}
        _ => errors.push(FieldError::new(
            "size",
            format!("must be between 1 and {} bytes", limits.max_bytes),
        )),
    }
    match (message_id, raw.size) {
        (Some(message_id), Some(size)) if errors.is_empty() => Ok(Upload {
            message_id,
            file_name,
            content_type,
            size,
        }),
        _ => Err(Error::Validation { errors }),
    }
}

/// The last segment of an object path: the file name reduced to the
/// characters every store accepts unencoded (S3's "safe" set), so the path
/// the database checks and the URL a browser requests are the same bytes.
/// The user's own name is kept in `file_name`.
fn safe_object_name(file_name: &str) -> String {
    let mapped: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "!-_.*'()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let trimmed = mapped.trim_matches('.');
    if trimmed.is_empty() || trimmed.contains("..") {
        "file".to_owned()
    } else {
        trimmed.to_owned()
    }
}

impl Service for AttachmentUrls {
    fn name(&self) -> &'static str {
        NAME
    }
    fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }
    fn http(&self) -> &HttpConfig {
        &self.http
    }
    async fn probe(&self) -> Result<(), Error> {
        self.service_db.ping().await
    }
    async fn handle(&self, req: Request) -> Result<Response, Error> {
        let post_only = || Error::MethodNotAllowed {
            allow: vec![Method::Post],
        };
        if req.route_is("/attachments/sign") {
            return match req.method {
                Method::Post => self.sign_downloads(&req).await,
                _ => Err(post_only()),
            };
        }
        if req.route_is("/attachments/upload-url") {
            return match req.method {
                Method::Post => self.upload_url(&req).await,
                _ => Err(post_only()),
            };
        }
        Err(Error::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> UploadLimits {
        UploadLimits::from_vars(&Vars(&[("ATTACHMENT_MAX_BYTES", "1000")])).expect("limits")
    }

    fn fields(err: Error) -> Vec<String> {
        match err {
            Error::Validation { errors } => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected 422, got {other:?}"),
        }
    }

    /// Regression (issue 11 item 14, found by schemathesis): `"size": 349.0`
    /// and `"expires_in": 551.0`, integers to JSON Schema, were a 400 "expected
    /// u64". Seen failing before the fix: the `expect`s below panicked.
    #[test]
    fn whole_numbers_written_as_floats_are_integers() {
        let upload: RawUpload =
            serde_json::from_value(json!({"size": 349.0})).expect("a whole float");
        assert_eq!(upload.size, Some(349));
        let sign: SignRequest =
            serde_json::from_value(json!({"ids": [], "expires_in": 551.0})).expect("a whole float");
        assert_eq!(sign.expires_in, Some(551));
        let sign: SignRequest = serde_json::from_value(json!({"ids": []})).expect("absent");
        assert_eq!(sign.expires_in, None);
        for bad in [json!(1.5), json!(-1), json!(4294967296u64), json!("10")] {
            assert!(
                serde_json::from_value::<SignRequest>(json!({"ids": [], "expires_in": bad}))
                    .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn uploads_are_validated_field_by_field() {
        let ok = RawUpload {
            message_id: Some(uuid::Uuid::new_v4().to_string()),
            file_name: Some("report (final).pdf".into()),
            content_type: Some("application/pdf".into()),
            size: Some(10),
        };
        assert!(validate_upload(ok, &limits()).is_ok());
        for (name, expected) in [
            ("../../etc/passwd", "file_name"),
            ("a\\b", "file_name"),
            ("..", "file_name"),
            ("a\u{7}", "file_name"),
        ] {
            let raw = RawUpload {
                message_id: Some(uuid::Uuid::new_v4().to_string()),
                file_name: Some(name.into()),
                content_type: Some("text/plain".into()),
                size: Some(10),
            };
            assert_eq!(
                fields(validate_upload(raw, &limits()).unwrap_err()),
                [expected],
                "{name:?}"
            );
        }
        let bad = RawUpload {
            message_id: Some("nope".into()),
            file_name: None,
            content_type: Some("application/x-msdownload".into()),
            size: Some(1001),
        };
        assert_eq!(
            fields(validate_upload(bad, &limits()).unwrap_err()),
            ["message_id", "file_name", "content_type", "size"]
        );
    }

    #[test]
    fn object_names_keep_only_safe_characters() {
        assert_eq!(safe_object_name("report (final).pdf"), "report_(final).pdf");
        assert_eq!(safe_object_name("façade ünïcode.txt"), "fa_ade__n_code.txt");
        assert_eq!(safe_object_name("...hidden"), "hidden");
        assert_eq!(safe_object_name("a..b"), "file");
        assert_eq!(safe_object_name(&"x".repeat(300)).len(), 100);
    }

    #[test]
    fn ids_are_bounded_parsed_and_deduplicated() {
        let id = uuid::Uuid::new_v4().to_string();
        assert_eq!(
            validate_ids(&[id.clone(), id.clone()]).expect("ids").len(),
            1
        );
        assert_eq!(fields(validate_ids(&[]).unwrap_err()), ["ids"]);
        assert_eq!(fields(validate_ids(&["x".into()]).unwrap_err()), ["ids[0]"]);
        let many: Vec<String> = (0..=sign::MAX_BATCH)
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect();
        assert_eq!(fields(validate_ids(&many).unwrap_err()), ["ids"]);
    }
}
