//! The one error type of the project and its rendering as
//! `application/problem+json` ([RFC 9457](https://www.rfc-editor.org/rfc/rfc9457)).
//!
//! Every handler, every shared crate and every function returns [`Error`].
//! Each variant documents the status it maps to. What a caller may read goes
//! into the problem document; what only an operator should read (a database
//! message, a provider's answer, which claim of a token failed) is carried in
//! fields that [`Error::log_detail`] hands to the log and that the response
//! never contains.

use crate::http::{Method, Response};
use serde::{Deserialize, Serialize};

/// One field that failed validation, as listed in a 422 problem's `errors`
/// (also as the database answers one, for rules that live there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The field's name as the client sent it (`title`, `customer_email`).
    pub field: String,
    /// What is wrong with it, in words a form can show next to the field.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Every failing field of one request, in the order they were checked:
/// validation checks them all and answers one 422 listing each, so a form
/// can show every problem at once.
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `field` failed.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// The value of a check that passed; a failed one is recorded under
    /// `field` and gives `None`.
    pub fn check<T, M: Into<String>>(&mut self, field: &str, checked: Result<T, M>) -> Option<T> {
        checked.map_err(|message| self.add(field, message)).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The validated value when no field failed, else the 422 naming each
    /// failure. `build` runs only when none failed, so it can take the
    /// checked values out of their `Option`s with `?`.
    pub fn finish<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, Error> {
        match self.is_empty().then(build).flatten() {
            Some(valid) => Ok(valid),
            None => Err(Error::Validation { errors: self.0 }),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400: the request cannot be understood (malformed JSON, a bad token
    /// from a third party such as a captcha). `detail` is shown to the client.
    #[error("bad request: {detail}")]
    BadRequest { detail: String },

    /// 400: a signed request (a provider's webhook) whose signature does not
    /// verify. Every cause looks the same to the sender; `reason` is logged.
    #[error("invalid signature: {reason}")]
    InvalidSignature { reason: String },

    /// 401: no credentials, or credentials that do not verify. Every cause
    /// looks the same to the caller; `reason` goes to the log only.
    #[error("unauthorized: {reason}")]
    Unauthorized { reason: String },

    /// 403: authenticated, but not allowed (RLS, missing permission).
    #[error("forbidden: {detail}")]
    Forbidden { detail: String },

    /// 404: nothing at this path, or a row the caller may not know exists.
    #[error("not found")]
    NotFound,

    /// 405 with an `Allow` header listing what the route accepts.
    #[error("method not allowed")]
    MethodNotAllowed { allow: Vec<Method> },

    /// 409: the request conflicts with what is stored (unique violation,
    /// a replay with a different body).
    #[error("conflict: {detail}")]
    Conflict { detail: String },

    /// 413: the body is longer than the configured limit.
    #[error("payload too large (limit {limit} bytes)")]
    PayloadTooLarge { limit: usize },

    /// 415: a content type the route does not accept.
    #[error("unsupported media type; expected {expected}")]
    UnsupportedMediaType { expected: String },

    /// 422: the body parsed, but fields are invalid. All failing fields at once.
    #[error("validation failed")]
    Validation { errors: Vec<FieldError> },

    /// 429 with `Retry-After`: a rate limit was hit; nothing was done.
    #[error("too many requests (retry after {retry_after_secs}s)")]
    TooManyRequests { retry_after_secs: u32 },

    /// Any other 4xx a rule of the database or a handler names explicitly
    /// (402 for "not enough credits", 409 for a conflict, ...); rate limits
    /// are [`Error::TooManyRequests`], which also says when to retry.
    #[error("client error {status}: {detail}")]
    Client { status: u16, detail: String },

    /// 422: a third party refused what the request asked of it (an email
    /// provider refusing an address). `detail` is for the client; the third
    /// party's own words (`reason`) are logged.
    #[error("rejected: {reason}")]
    Rejected { detail: String, reason: String },

    /// 502: a third party (an email provider) failed while handling the
    /// request. `detail` tells the client what happened to their request
    /// (for example, that credits were refunded); `reason` is logged.
    #[error("bad gateway: {reason}")]
    BadGateway { detail: String, reason: String },

    /// 503 with `Retry-After`: a dependency (PostgREST, a provider) is down,
    /// answered 5xx or did not answer in time; the client may retry. A call
    /// that timed out may still have committed: each route's retry is safe
    /// anyway (README, Reliability). With `detail`, the client is told what
    /// was done (a mail sent, a reservation that stays until reconciled).
    #[error("unavailable: {reason}")]
    Unavailable {
        reason: String,
        retry_after_secs: u32,
        detail: Option<String>,
    },

    /// 500: the function's configuration is missing or malformed. The
    /// variable's name is logged, never sent.
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),

    /// 500: a bug or an unexpected answer. Logged, never echoed.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Error::BadRequest {
            detail: detail.into(),
        }
    }
    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Error::Unauthorized {
            reason: reason.into(),
        }
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Error::Forbidden {
            detail: detail.into(),
        }
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        Error::Conflict {
            detail: detail.into(),
        }
    }
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Error::Unavailable {
            reason: reason.into(),
            retry_after_secs: 5,
            detail: None,
        }
    }
    /// A 503 after something was written: `detail` says what, for the client.
    pub fn unavailable_after(detail: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Unavailable {
            reason: reason.into(),
            retry_after_secs: 5,
            detail: Some(detail.into()),
        }
    }
    pub fn internal(detail: impl Into<String>) -> Self {
        Error::Internal(detail.into())
    }
    /// A single invalid field, for handlers that find one at a time.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation {
            errors: vec![FieldError::new(field, message)],
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest { .. } | Error::InvalidSignature { .. } => 400,
            Error::Unauthorized { .. } => 401,
            Error::Forbidden { .. } => 403,
            Error::NotFound => 404,
            Error::MethodNotAllowed { .. } => 405,
            Error::Conflict { .. } => 409,
            Error::PayloadTooLarge { .. } => 413,
            Error::UnsupportedMediaType { .. } => 415,
            Error::Validation { .. } => 422,
            Error::TooManyRequests { .. } => 429,
            Error::Client { status, .. } => *status,
            Error::Rejected { .. } => 422,
            Error::BadGateway { .. } => 502,
            Error::Unavailable { .. } => 503,
            Error::Config(_) | Error::Internal(_) => 500,
        }
    }

    /// A stable, machine-readable name for the problem, sent as the `code`
    /// extension member so clients need not parse `title`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest { .. } => "bad_request",
            Error::InvalidSignature { .. } => "invalid_signature",
            Error::Unauthorized { .. } => "unauthorized",
            Error::Forbidden { .. } => "forbidden",
            Error::NotFound => "not_found",
            Error::MethodNotAllowed { .. } => "method_not_allowed",
            Error::Conflict { .. } => "conflict",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::UnsupportedMediaType { .. } => "unsupported_media_type",
            Error::Validation { .. } => "validation_failed",
            Error::TooManyRequests { .. } => "rate_limited",
            Error::Client { .. } => "client_error",
            Error::Rejected { .. } => "rejected",
            Error::BadGateway { .. } => "bad_gateway",
            Error::Unavailable { .. } => "unavailable",
            Error::Config(_) => "misconfigured",
            Error::Internal(_) => "internal",
        }
    }

    /// What the client is told in `detail`. Never contains internal text.
    fn public_detail(&self) -> Option<String> {
        match self {
            Error::BadRequest { detail }
            | Error::Forbidden { detail }
            | Error::Conflict { detail }
            | Error::Client { detail, .. }
            | Error::Rejected { detail, .. }
            | Error::BadGateway { detail, .. } => Some(detail.clone()),
            Error::Unauthorized { .. } => Some("Missing or invalid credentials.".to_owned()),
            Error::InvalidSignature { .. } => {
                Some("The signature is missing or invalid.".to_owned())
            }
            Error::NotFound => Some("No such resource.".to_owned()),
            Error::MethodNotAllowed { allow } => {
                Some(format!("Allowed methods: {}.", Method::join(allow)))
            }
            Error::TooManyRequests { retry_after_secs } => Some(format!(
                "Too many requests. Retry in {retry_after_secs} seconds."
            )),
            Error::PayloadTooLarge { limit } => {
                Some(format!("The body must not exceed {limit} bytes."))
            }
            Error::UnsupportedMediaType { expected } => {
                Some(format!("Send the body as {expected}."))
            }
            Error::Validation { errors } => Some(format!(
                "{} field{} failed validation.",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            )),
            Error::Unavailable { detail, .. } => Some(detail.clone().unwrap_or_else(|| {
                "A service this function depends on is unavailable. Retry later.".to_owned()
            })),
            Error::Config(_) | Error::Internal(_) => {
                Some("The server failed to handle the request. It has been logged.".to_owned())
            }
        }
    }

    /// What goes to the log beside the status: the internal reason where the
    /// variant carries one. Callers must not pass secrets into errors.
    pub fn log_detail(&self) -> Option<String> {
        match self {
            Error::Unauthorized { reason }
            | Error::InvalidSignature { reason }
            | Error::Unavailable { reason, .. }
            | Error::Rejected { reason, .. }
            | Error::BadGateway { reason, .. } => Some(reason.clone()),
            Error::Config(e) => Some(e.to_string()),
            Error::Internal(detail) => Some(detail.clone()),
            _ => None,
        }
    }

    /// Renders the problem document. `request_id` is echoed so a user can
    /// quote it and an operator can find the matching log line.
    pub fn to_response(&self, request_id: &str) -> Response {
        let status = self.status();
        let problem = Problem {
            kind: "about:blank",
            title: reason_phrase(status),
            status,
            detail: self.public_detail(),
            code: self.code(),
            request_id,
            errors: match self {
                Error::Validation { errors } => Some(errors),
                _ => None,
            },
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = Response::new(status)
            .with_header("content-type", "application/problem+json")
            .with_body(body);
        match self {
            Error::MethodNotAllowed { allow } => {
                response = response.with_header("allow", &Method::join(allow));
            }
            Error::Unauthorized { .. } => {
                response = response.with_header("www-authenticate", "Bearer");
            }
            Error::Unavailable {
                retry_after_secs, ..
            }
            | Error::TooManyRequests { retry_after_secs } => {
                response = response.with_header("retry-after", &retry_after_secs.to_string());
            }
            _ => {}
        }
        response
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    code: &'static str,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a Vec<FieldError>>,
}

/// The standard reason phrase, used as the problem's `title` (with
/// `type: about:blank`, RFC 9457 section 4.2.1 asks for exactly this).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        423 => "Locked",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ if status < 500 => "Client Error",
        _ => "Server Error",
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn body(response: &Response) -> serde_json::Value {
        serde_json::from_slice(&response.body).expect("problem body is JSON")
    }

    #[test]
    fn validation_lists_every_field() {
        let err = Error::Validation {
            errors: vec![
                FieldError::new("title", "must not be empty"),
                FieldError::new("customer_email", "is not an email address"),
            ],
        };
        let response = err.to_response("req-1");
        assert_eq!(response.status, 422);
        assert_eq!(
            response.header("content-type"),
            Some("application/problem+json")
        );
        let json = body(&response);
        assert_eq!(json["status"], 422);
        assert_eq!(json["title"], "Unprocessable Content");
        assert_eq!(json["request_id"], "req-1");
        assert_eq!(json["errors"][1]["field"], "customer_email");
        assert_eq!(json["errors"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn internal_detail_never_reaches_the_client() {
        for err in [
            Error::internal("duplicate key value violates constraint secret_idx"),
            Error::unauthorized("signature mismatch for kid abc"),
            Error::unavailable("connect ECONNREFUSED 10.0.0.7:5432"),
        ] {
            let response = err.to_response("r");
            let text = String::from_utf8(response.body.clone()).expect("utf8");
            assert!(!text.contains("secret_idx"), "{text}");
            assert!(!text.contains("kid abc"), "{text}");
            assert!(!text.contains("10.0.0.7"), "{text}");
            assert!(err.log_detail().is_some());
        }
    }

    #[test]
    fn status_specific_headers() {
        let r = Error::MethodNotAllowed {
            allow: vec![Method::Get, Method::Post],
        }
        .to_response("r");
        assert_eq!(r.status, 405);
        assert_eq!(r.header("allow"), Some("GET, POST"));

        let r = Error::unavailable("down").to_response("r");
        assert_eq!(r.status, 503);
        assert_eq!(r.header("retry-after"), Some("5"));

        let r = Error::unauthorized("x").to_response("r");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }

    #[test]
    fn field_errors_keep_every_failure_in_order() {
        let mut errors = FieldErrors::new();
        assert_eq!(errors.check::<_, String>("a", Ok(1)), Some(1));
        errors.add("b", "is required");
        assert_eq!(errors.check("c[0]", Err::<u8, _>("is not a UUID")), None);
        let err = errors.finish(|| Some(())).unwrap_err();
        let Error::Validation { errors } = &err else {
            panic!("expected 422, got {err:?}");
        };
        assert_eq!(
            errors,
            &[
                FieldError::new("b", "is required"),
                FieldError::new("c[0]", "is not a UUID")
            ]
        );

        assert_eq!(FieldErrors::new().finish(|| Some(7)).unwrap(), 7);
        let mut built = false;
        let mut failed = FieldErrors::new();
        failed.add("x", "bad");
        let _ = failed.finish(|| {
            built = true;
            Some(())
        });
        assert!(!built, "nothing is built once a field failed");
    }
}
