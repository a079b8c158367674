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

mod download;
pub mod sign;
mod upload;

use download::Visible;
pub use download::{read_download_request, DownloadRequest};
pub use upload::{object_path, read_upload_request, Upload, UploadLimits};

use edge_auth::{AuthenticatedUser, JwtConfig, Policy, Verifier};
use edge_core::{Error, Function, Host, HttpConfig, Method, Request, Response, Service, Vars};
use edge_db::Supabase;
use serde::Deserialize;
use serde_json::{json, Value};
use sign::{Access, Signer, SignerConfig};

pub const NAME: &str = "attachment-urls";

pub struct AttachmentUrls {
    http: HttpConfig,
    supabase: Supabase,
    verifier: Verifier,
    signer: Signer,
    limits: UploadLimits,
    now: fn() -> i64,
}

impl Function for AttachmentUrls {
    /// Reads the config once; see the README's table of variables.
    fn from_vars(vars: &Vars<'_>, host: Host) -> Result<Self, Error> {
        let Host { sleep, now } = host;
        let supabase = Supabase::from_vars(vars, sleep)?;
        let http = reqwest::Client::new();
        Ok(Self {
            http: HttpConfig::from_vars(vars)?,
            supabase,
            verifier: Verifier::new(JwtConfig::from_vars(vars)?, http.clone(), sleep),
            signer: Signer::new(SignerConfig::from_vars(vars)?, http, sleep),
            limits: UploadLimits::from_vars(vars)?,
            now,
        })
    }
}

impl AttachmentUrls {
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
        // parameter, which its token does not cover, so it is appended to
        // the signed URL below; a signer whose URLs cannot carry it unsigned
        // (s3) refuses it rather than silently ignoring it.
        if body.download {
            self.signer.check_download_param()?;
        }

        // One request for the whole batch; RLS leaves out what the caller
        // may not see.
        let db = self.supabase.as_user(&user);
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
        let db = self.supabase.as_user(&user);

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
                    .supabase
                    .service()
                    .execute::<Value>(
                        self.supabase
                            .service()
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

/// A JSON number that is a whole number, `10` or `10.0` alike: JSON Schema's
/// `integer` (what `openapi.yaml` declares) includes `10.0`, serde's `u64`
/// does not, so clients that write numbers as floats (JavaScript's
/// `JSON.stringify(10.0)` does not, others do) got a 400 for valid data.
/// Fractions, negatives and values past `T` stay errors (400).
pub(crate) fn integer<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
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

impl Service for AttachmentUrls {
    const NAME: &'static str = NAME;
    fn http(&self) -> &HttpConfig {
        &self.http
    }
    async fn probe(&self) -> Result<(), Error> {
        self.supabase.probe().await
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
    use download::{validate_ids, SignRequest};
    use edge_testing::errors::fields;
    use upload::{safe_object_name, validate_upload, RawUpload};

    fn limits() -> UploadLimits {
        UploadLimits::from_vars(&Vars(&[("ATTACHMENT_MAX_BYTES", "1000")])).expect("limits")
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
