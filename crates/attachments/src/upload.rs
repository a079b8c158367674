//! `POST /attachments/upload-url`'s body and the limits it is checked
//! against: the file's name, type and size, and the object path built
//! from them (never taken from the client).

use edge_core::{ConfigError, Error, FieldErrors, Request, Vars};
use serde::Deserialize;

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

#[derive(Deserialize)]
pub(crate) struct RawUpload {
    pub(crate) message_id: Option<String>,
    pub(crate) file_name: Option<String>,
    pub(crate) content_type: Option<String>,
    #[serde(default, deserialize_with = "crate::integer")]
    pub(crate) size: Option<u64>,
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

pub(crate) fn validate_upload(raw: RawUpload, limits: &UploadLimits) -> Result<Upload, Error> {
    let mut errors = FieldErrors::new();
    let message_id = raw
        .message_id
        .as_deref()
        .and_then(|s| uuid::Uuid::parse_str(s).ok());
    if message_id.is_none() {
        errors.add("message_id", "must be the UUID of a message");
    }
    let file_name = raw.file_name.unwrap_or_default().trim().to_owned();
    if file_name.is_empty() || file_name.chars().count() > 255 {
        errors.add("file_name", "must be 1 to 255 characters");
    } else if file_name.contains(['/', '\\']) || file_name == "." || file_name.contains("..") {
        errors.add("file_name", "must be a plain file name, not a path");
    } else if file_name.chars().any(char::is_control) {
        errors.add("file_name", "must not contain control characters");
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
        errors.add(
            "content_type",
            format!("must be one of: {}", limits.content_types.join(", ")),
        );
    }
    match raw.size {
        Some(size) if (1..=limits.max_bytes).contains(&size) => {}
        _ => errors.add(
            "size",
            format!("must be between 1 and {} bytes", limits.max_bytes),
        ),
    }
    errors.finish(|| {
        Some(Upload {
            message_id: message_id?,
            file_name,
            content_type,
            size: raw.size?,
        })
    })
}

/// The last segment of an object path: the file name reduced to the
/// characters every store accepts unencoded (S3's "safe" set), so the path
/// the database checks and the URL a browser requests are the same bytes.
/// The user's own name is kept in `file_name`.
pub(crate) fn safe_object_name(file_name: &str) -> String {
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
