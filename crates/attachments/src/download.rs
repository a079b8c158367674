//! `POST /attachments/sign`'s body: the ids to sign, read and checked.

use edge_core::{Error, FieldErrors, Request};
use serde::Deserialize;

use crate::sign;

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
pub(crate) struct SignRequest {
    #[serde(default)]
    pub(crate) ids: Vec<String>,
    #[serde(default, deserialize_with = "crate::integer")]
    pub(crate) expires_in: Option<u32>,
    /// Ask the browser to save the file (under its original name) rather
    /// than display it.
    #[serde(default)]
    pub(crate) download: bool,
}

#[derive(Deserialize)]
pub(crate) struct Visible {
    pub(crate) id: uuid::Uuid,
    pub(crate) object_path: String,
    pub(crate) file_name: String,
}

pub(crate) fn validate_ids(ids: &[String]) -> Result<Vec<uuid::Uuid>, Error> {
    let mut errors = FieldErrors::new();
    if ids.is_empty() {
        errors.add("ids", "give at least one attachment id");
    }
    if ids.len() > sign::MAX_BATCH {
        errors.add("ids", format!("at most {} ids at once", sign::MAX_BATCH));
    }
    let mut parsed = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        match uuid::Uuid::parse_str(id) {
            Ok(id) if !parsed.contains(&id) => parsed.push(id),
            Ok(_) => {}
            Err(_) => errors.add(format!("ids[{i}]"), "is not a UUID"),
        }
    }
    errors.finish(|| Some(parsed))
}
