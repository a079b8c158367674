//! How a submission is answered: JSON (201, or 200 for a replay) for
//! scripts, a 303 to the thank-you page or an HTML error page for plain
//! form posts, and the decoy success a honeypot hit gets.

use edge_core::{BodyKind, Error, Request, Response};
use serde::Deserialize;
use serde_json::json;

use crate::pages;

/// A ticket as `intake_submit` answers it, or as `intake_begin` replays it
/// (then without `created`: it was created by an earlier request).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Created {
    pub(crate) reference: String,
    #[serde(default)]
    pub(crate) created: bool,
}

pub(crate) struct Accepted {
    pub(crate) created: Created,
    pub(crate) thank_you_url: Option<String>,
    pub(crate) origin: Option<String>,
}

/// The result of a submission, and whether to answer it as a form or JSON.
pub(crate) struct Outcome {
    pub(crate) kind: BodyKind,
    pub(crate) result: Result<Accepted, Error>,
}

impl Outcome {
    /// A honeypot hit: looks like success, writes nothing.
    pub(crate) fn decoy(kind: BodyKind) -> Self {
        let reference = format!(
            "TK-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8].to_uppercase()
        );
        Outcome {
            kind,
            result: Ok(Accepted {
                created: Created {
                    reference,
                    created: true,
                },
                thank_you_url: None,
                origin: None,
            }),
        }
    }

    pub(crate) fn respond(self, req: &Request) -> Result<Response, Error> {
        match (self.kind, self.result) {
            (BodyKind::Json, Err(err)) => Err(err),
            (BodyKind::Json, Ok(accepted)) => {
                let replayed = !accepted.created.created;
                let status = if replayed { 200 } else { 201 };
                let mut response = Response::json(
                    status,
                    &json!({"reference": accepted.created.reference, "status": "open"}),
                )?;
                if replayed {
                    response = response.with_header("idempotent-replayed", "true");
                }
                Ok(accepted.with_cors(response))
            }
            (BodyKind::Form, Ok(accepted)) => {
                let reference = &accepted.created.reference;
                let location = match &accepted.thank_you_url {
                    Some(url) => pages::with_query(url, "reference", reference),
                    None => pages::with_query(THANKS_LOCATION, "reference", reference),
                };
                Ok(accepted.with_cors(Response::new(303).with_header("location", &location)))
            }
            (BodyKind::Form, Err(err)) => Ok(pages::error_page(&err, req.header("referer"))),
        }
    }
}

impl Accepted {
    /// The account allowed the page's origin (it was checked before the
    /// ticket was written), so the answer says so itself and the pipeline
    /// need not ask the database again.
    pub(crate) fn with_cors(&self, response: Response) -> Response {
        match &self.origin {
            Some(origin) => response.with_header("access-control-allow-origin", origin),
            None => response,
        }
    }
}

/// The built-in thank-you page as a `Location`: a relative reference
/// (RFC 3986, section 4.2) that the browser resolves against the URL it
/// posted to, landing beside `/tickets` under whatever prefix the function
/// is mounted at (`/api/tickets` -> `/api/tickets/thanks`). It is a
/// constant, never built from the request's path: a path such as
/// `//evil.example/tickets` (which workers.dev and `wrangler dev` pass on
/// unmerged) would become `//evil.example/tickets/thanks`, which a browser
/// reads as another host. Resolved against any URL of this function, this
/// stays on it.
pub(crate) const THANKS_LOCATION: &str = "tickets/thanks";
