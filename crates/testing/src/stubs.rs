//! Local stand-ins for third-party APIs this machine cannot reach.
//!
//! Each follows the provider's documented request and response; what it
//! answers is decided by the token or payload the test sends, so parallel
//! tests do not interfere. Every request is recorded for assertions.
//!
//! - Captcha `siteverify`, as Cloudflare Turnstile documents it
//!   (<https://developers.cloudflare.com/turnstile/get-started/server-side-validation/>):
//!   a form-encoded POST of `secret`, `response`, `remoteip`,
//!   `idempotency_key`, answered with `{success, error-codes, hostname,
//!   action, challenge_ts}`. Tokens are single-use, except a retry with the
//!   same `idempotency_key`, which gets the first answer again. The widget
//!   script (`/turnstile/v0/api.js`) fills the form field a real widget fills.
//! - The same for hCaptcha (<https://docs.hcaptcha.com/#verify-the-user-response-server-side>):
//!   `secret`, `response`, `remoteip` (and `sitekey`, which we do not
//!   send); no idempotency key, so a second verification of a token is
//!   always `already-seen-response`; its own error codes
//!   (`expired-input-response`, `sitekey-secret-mismatch`,
//!   `not-using-dummy-passcode`); `{success, challenge_ts, hostname,
//!   credit}` with no `action`.
//! - Email (Resend, Postmark: [`email`]), the Auth JWKS ([`auth`]) and
//!   hosted Storage's signing routes ([`storage`]).
//!
//! Each can also be told to fail in each way a third party fails
//! ([`Fault`]), per request, so the cases of issue 12 run beside the rest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{json, Value};

/// A local URL whose connections are refused ([`Fault::Refuse`]).
pub use crate::server::refused_url;
use crate::server::{self, Serving};

/// The secret the captcha stand-in expects; functions get it as `CAPTCHA_SECRET`.
pub const CAPTCHA_SECRET: &str = "stub-captcha-secret";
/// The hostname the stand-in reports a token was solved on.
pub const CAPTCHA_HOSTNAME: &str = "localhost";
/// Turnstile's documented dummy token (what its test site keys produce):
/// always valid, never spent.
pub const DUMMY_TOKEN: &str = "XXXX.DUMMY.TOKEN.XXXX";

/// A running stand-in; stops when dropped.
pub struct Stub {
    serving: Serving,
    requests: Requests,
    fault: Switch,
}

/// The fault a stand-in's `/switch/...` routes act out, set by the test.
type Switch = Arc<Mutex<Option<Fault>>>;

/// What a stand-in received, each request as a JSON object (form fields,
/// or the JSON body plus the headers that matter).
type Requests = Arc<Mutex<Vec<Value>>>;

impl Stub {
    /// Its base URL (`http://127.0.0.1:<port>`).
    pub fn url(&self) -> &str {
        self.serving.url()
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// What the stand-in's `/switch/...` routes do from now on: answer
    /// normally (`None`) or act out `fault`. Only routes under `/switch`
    /// listen, so tests using the other routes are not disturbed.
    pub fn set_fault(&self, fault: Option<Fault>) {
        if let Ok(mut switch) = self.fault.lock() {
            *switch = fault;
        }
    }
}

/// hCaptcha's documented test response token (what its test site key
/// produces). It verifies only with the test secret; with a real secret,
/// such as ours, hCaptcha answers `not-using-dummy-passcode`.
pub const HCAPTCHA_TEST_TOKEN: &str = "10000000-aaaa-bbbb-cccc-000000000001";

/// Where each provider's `siteverify` is served on the captcha stand-in.
pub const TURNSTILE_SITEVERIFY_PATH: &str = "/turnstile/v0/siteverify";
pub const HCAPTCHA_SITEVERIFY_PATH: &str = "/hcaptcha/siteverify";

#[derive(Default)]
struct CaptchaState {
    requests: Requests,
    /// Per provider and token: its first verification.
    spent: Mutex<HashMap<(Flavor, String), FirstVerification>>,
}

/// The idempotency key a token was first verified with, and the answer.
type FirstVerification = (Option<String>, Value);

/// Which provider a request came in as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Flavor {
    Turnstile,
    HCaptcha,
}

/// Starts the captcha stand-in: Turnstile's `siteverify` at
/// [`TURNSTILE_SITEVERIFY_PATH`] and its widget script, and hCaptcha's
/// `siteverify` at [`HCAPTCHA_SITEVERIFY_PATH`].
///
/// The token decides the answer, for both: `pass...` succeeds once;
/// `host-...` succeeds but on another site; `action-...` succeeds for
/// another widget action (Turnstile; hCaptcha has no actions);
/// `invalid...` is `invalid-input-response`; `expired...` is Turnstile's
/// `timeout-or-duplicate` or hCaptcha's `expired-input-response`;
/// `othersite-...` is hCaptcha's `sitekey-secret-mismatch` (a token solved
/// for another site's key); `down...` is an HTTP 503, as when the provider
/// is down; `slow...` answers only after 30 s; anything else is
/// `invalid-input-response`. Each provider's test token answers as its
/// documentation says ([`DUMMY_TOKEN`], [`HCAPTCHA_TEST_TOKEN`]).
pub async fn captcha(port: u16) -> anyhow::Result<Stub> {
    let state = Arc::new(CaptchaState::default());
    let requests = Arc::clone(&state.requests);
    let app = Router::new()
        .route(
            TURNSTILE_SITEVERIFY_PATH,
            post(|state, form| siteverify(Flavor::Turnstile, state, form)),
        )
        .route("/turnstile/v0/api.js", get(widget_script))
        .route(
            HCAPTCHA_SITEVERIFY_PATH,
            post(|state, form| siteverify(Flavor::HCaptcha, state, form)),
        )
        .with_state(state);
    serve(app, port, requests).await
}

async fn serve(app: Router, port: u16, requests: Requests) -> anyhow::Result<Stub> {
    serve_switched(app, port, requests, Switch::default()).await
}

async fn serve_switched(
    app: Router,
    port: u16,
    requests: Requests,
    fault: Switch,
) -> anyhow::Result<Stub> {
    let serving = server::serve(app, port)
        .await
        .with_context(|| format!("start a stand-in on port {port}"))?;
    Ok(Stub {
        serving,
        requests,
        fault,
    })
}

async fn siteverify(
    flavor: Flavor,
    State(state): State<Arc<CaptchaState>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Ok(mut requests) = state.requests.lock() {
        requests.push(json!(form));
    }
    let token = form.get("response").cloned().unwrap_or_default();
    let key = form.get("idempotency_key").cloned();
    if form.get("secret").map(String::as_str) != Some(CAPTCHA_SECRET) {
        return Json(failure("invalid-input-secret")).into_response();
    }
    if token.is_empty() {
        return Json(failure("missing-input-response")).into_response();
    }
    if let Some(fault) = Fault::named_in(&token, "fault-") {
        return fault.answer(success(flavor, CAPTCHA_HOSTNAME, "")).await;
    }
    if token.starts_with("down") {
        return (StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable").into_response();
    }
    if token.starts_with("slow") {
        // Longer than any function waits: the caller's timeout decides.
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    }
    match (flavor, token.as_str()) {
        (Flavor::Turnstile, DUMMY_TOKEN) => {
            return Json(success(flavor, CAPTCHA_HOSTNAME, "")).into_response()
        }
        (Flavor::HCaptcha, HCAPTCHA_TEST_TOKEN) => {
            return Json(failure("not-using-dummy-passcode")).into_response()
        }
        _ => {}
    }
    let Ok(mut spent) = state.spent.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Some((first_key, first_answer)) = spent.get(&(flavor, token.clone())) {
        let answer = match flavor {
            // Turnstile: a retry with the same idempotency key gets the
            // first answer; any other second use of a token is a duplicate.
            Flavor::Turnstile if key.is_some() && key == *first_key => first_answer.clone(),
            Flavor::Turnstile => failure("timeout-or-duplicate"),
            // hCaptcha has no idempotency key: a token verifies once.
            Flavor::HCaptcha => failure("already-seen-response"),
        };
        return Json(answer).into_response();
    }
    let answer = if token.starts_with("pass") {
        success(flavor, CAPTCHA_HOSTNAME, "")
    } else if token.starts_with("host-") {
        success(flavor, "evil.example", "")
    } else if token.starts_with("action-") && flavor == Flavor::Turnstile {
        success(flavor, CAPTCHA_HOSTNAME, "login")
    } else if token.starts_with("expired") {
        failure(match flavor {
            Flavor::Turnstile => "timeout-or-duplicate",
            Flavor::HCaptcha => "expired-input-response",
        })
    } else if token.starts_with("othersite-") && flavor == Flavor::HCaptcha {
        failure("sitekey-secret-mismatch")
    } else {
        failure("invalid-input-response")
    };
    spent.insert((flavor, token), (key, answer.clone()));
    Json(answer).into_response()
}

/// The widget script, reduced to what a form sees: every `.cf-turnstile`
/// element gets the hidden `cf-turnstile-response` field, here holding a
/// fresh `pass-...` token at once (a person would solve a challenge first).
async fn widget_script() -> impl IntoResponse {
    (
        [("content-type", "text/javascript; charset=utf-8")],
        r#"document.querySelectorAll(".cf-turnstile").forEach(function (el) {
  var input = document.createElement("input");
  input.type = "hidden";
  input.name = "cf-turnstile-response";
  input.value = "pass-" + Date.now() + "-" + Math.random().toString(36).slice(2);
  el.appendChild(input);
});
"#,
    )
}

fn success(flavor: Flavor, hostname: &str, action: &str) -> Value {
    match flavor {
        Flavor::Turnstile => json!({
            "success": true,
            "challenge_ts": "2026-11-23T12:00:00.000Z",
            "hostname": hostname,
            "error-codes": [],
            "action": action,
            "cdata": "",
        }),
        Flavor::HCaptcha => json!({
            "success": true,
            "challenge_ts": "2026-11-23T12:00:00.000Z",
            "hostname": hostname,
            "credit": false,
        }),
    }
}

fn failure(code: &str) -> Value {
    json!({"success": false, "error-codes": [code]})
}

/// The API key the email stand-in expects on Resend's routes; functions get
/// it as `EMAIL_API_KEY`.
pub const EMAIL_API_KEY: &str = "re_stub_key";
/// The server token the email stand-in expects on Postmark's routes.
pub const POSTMARK_SERVER_TOKEN: &str = "stub-postmark-server-token";

#[derive(Default)]
struct EmailState {
    requests: Requests,
    /// Idempotency key -> the body of the first request with it and the id
    /// it got.
    sent: Mutex<HashMap<String, (Value, String)>>,
    /// Postmark's sent messages, newest last, as its message search lists
    /// them.
    postmark_sent: Mutex<Vec<Value>>,
}

/// What a repeated Resend idempotency key gets.
enum Keyed {
    /// A new send, or the same key and body again: the id (and whether it
    /// is new).
    Id(String, bool),
    /// The same key with another body.
    OtherBody,
}

impl EmailState {
    fn record(&self, provider: &str, body: &Value, key: Option<&str>, sent: bool) {
        if let Ok(mut requests) = self.requests.lock() {
            requests.push(
                json!({"provider": provider, "body": body, "idempotency_key": key, "sent": sent}),
            );
        }
    }

    /// A new message id; with an idempotency key used before, the one it
    /// got first, if the body is the same.
    fn message_id(&self, key: Option<&str>, body: &Value) -> Option<Keyed> {
        let mut sent = self.sent.lock().ok()?;
        if let Some((first, id)) = key.and_then(|k| sent.get(k)) {
            return Some(if first == body {
                Keyed::Id(id.clone(), false)
            } else {
                Keyed::OtherBody
            });
        }
        let id = format!("stub-{}", sent.len() + 1);
        sent.insert(
            key.map_or_else(|| id.clone(), str::to_owned),
            (body.clone(), id.clone()),
        );
        Some(Keyed::Id(id, true))
    }
}

/// Starts the email stand-in, which speaks both providers' send APIs as
/// they document them; the subject (or a recipient) decides what happens.
///
/// Resend, `POST /emails`
/// (<https://resend.com/docs/api-reference/emails/send-email>, errors as in
/// <https://resend.com/docs/api-reference/errors>): bearer API key (none:
/// 401 `missing_api_key`; another: 403 `invalid_api_key`), JSON body,
/// optional `Idempotency-Key` (kept for ever here, 24 hours at Resend: a
/// repeat with the same body gets the first id and sends nothing, with
/// another body 409 `invalid_idempotent_request`;
/// <https://resend.com/docs/dashboard/emails/idempotency-keys>), answer
/// `{"id"}`; a body without `subject` or `template` is 422
/// `missing_required_field`. `[reject]` is 400 `validation_error`;
/// `[rate-limit]` 429 `rate_limit_exceeded` with Resend's `ratelimit-*` and
/// `retry-after` headers; `[quota]` 429 `daily_quota_exceeded`; `[fail]` a
/// 500 `application_error` before sending; `[lost]` sends the mail, then
/// answers 500 (what a provider failing after accepting looks like; a
/// repeat of it under its key gets the id); `[hang]`
/// sends it after 30 s, longer than any function waits.
///
/// Postmark, `POST /email` and `POST /email/withTemplate`
/// (<https://postmarkapp.com/developer/api/email-api>, error codes as in
/// <https://postmarkapp.com/developer/api/overview#error-codes>):
/// `X-Postmark-Server-Token` (wrong or missing: 401, `ErrorCode` 10), answer
/// `{To, SubmittedAt, MessageID, ErrorCode: 0, Message: "OK"}`. Addresses
/// whose local part starts with `inactive` have hard-bounced: when every
/// recipient is one, 422 with `ErrorCode` 406 and nothing is sent; when only
/// some are, the others are sent the mail and the answer is still a 422
/// with 406, "Message OK, but will not deliver to these inactive addresses".
/// `[fail]` is a 500. Sends carry `Metadata`; `GET /messages/outbound`
/// (<https://postmarkapp.com/developer/api/messages-api>: `count`,
/// `offset`, `recipient`, `metadata_<key>` filters) lists the messages
/// sent, newest first, as `{TotalCount, Messages: [{MessageID, Status,
/// Recipients, Subject, Metadata, ...}]}`.
///
/// Each request is recorded with its `provider` and a `sent` flag: whether
/// it was a new send.
pub async fn email(port: u16) -> anyhow::Result<Stub> {
    let state = Arc::new(EmailState::default());
    let requests = Arc::clone(&state.requests);
    let app = Router::new()
        .route("/emails", post(resend_send))
        .route("/email", post(postmark_send))
        .route("/email/withTemplate", post(postmark_send))
        .route("/messages/outbound", get(postmark_search))
        .with_state(state);
    serve(app, port, requests).await
}

fn header(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn resend_error(status: StatusCode, name: &str, message: &str) -> Response {
    let error = json!({"statusCode": status.as_u16(), "name": name, "message": message});
    (status, Json(error)).into_response()
}

async fn resend_send(
    State(state): State<Arc<EmailState>>,
    headers: axum::http::HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let key = header(&headers, "idempotency-key");
    let subject = body["subject"].as_str().unwrap_or_default().to_owned();
    let refuse = |status, name, message| {
        state.record("resend", &body, key.as_deref(), false);
        resend_error(status, name, message)
    };
    match header(&headers, "authorization") {
        None => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "missing_api_key",
                "Missing API key in the authorization header.",
            )
        }
        Some(auth) if auth != format!("Bearer {EMAIL_API_KEY}") => {
            return refuse(
                StatusCode::FORBIDDEN,
                "invalid_api_key",
                "API key is invalid.",
            )
        }
        Some(_) => {}
    }
    if body.get("subject").is_none() && body.get("template").is_none() {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_required_field",
            "Missing `subject` field.",
        );
    }
    if subject.contains("[reject]") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "validation_error",
            "Invalid `to` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format.",
        );
    }
    if subject.contains("[rate-limit]") {
        state.record("resend", &body, key.as_deref(), false);
        let mut response = resend_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            "Too many requests. You can only make 2 requests per second.",
        );
        for (name, value) in [
            ("ratelimit-limit", "2"),
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", "1"),
            ("retry-after", "1"),
        ] {
            response
                .headers_mut()
                .insert(name, axum::http::HeaderValue::from_static(value));
        }
        return response;
    }
    if subject.contains("[quota]") {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "daily_quota_exceeded",
            "You have reached your daily email sending quota.",
        );
    }
    if subject.contains("[fail]") {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "application_error",
            "An unexpected error occurred.",
        );
    }
    if let Some(fault) = Fault::named_in(&subject, "[fault:") {
        let Some(Keyed::Id(id, new)) = state.message_id(key.as_deref(), &body) else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        state.record("resend", &body, key.as_deref(), new);
        return fault.answer(json!({"id": id})).await;
    }
    if subject.contains("[hang]") {
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    }
    let (id, new) = match state.message_id(key.as_deref(), &body) {
        Some(Keyed::Id(id, new)) => (id, new),
        Some(Keyed::OtherBody) => {
            return refuse(
                StatusCode::CONFLICT,
                "invalid_idempotent_request",
                "This idempotency key has already been used on a request that had a different payload. \
                 Retrying this request is useless without changing the idempotency key or payload.",
            )
        }
        None => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    state.record("resend", &body, key.as_deref(), new);
    if subject.contains("[lost]") && new {
        return resend_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "An unexpected error occurred.",
        );
    }
    Json(json!({"id": id})).into_response()
}

async fn postmark_send(
    State(state): State<Arc<EmailState>>,
    headers: axum::http::HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let postmark_error = |status: StatusCode, code: i64, message: String| {
        (status, Json(json!({"ErrorCode": code, "Message": message}))).into_response()
    };
    if header(&headers, "x-postmark-server-token").as_deref() != Some(POSTMARK_SERVER_TOKEN) {
        state.record("postmark", &body, None, false);
        return postmark_error(
            StatusCode::UNAUTHORIZED,
            10,
            "Request does not contain a valid Server token.".into(),
        );
    }
    if body["Subject"]
        .as_str()
        .unwrap_or_default()
        .contains("[fail]")
    {
        state.record("postmark", &body, None, false);
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"Message": "Internal server error."})),
        )
            .into_response();
    }
    let to = body["To"].as_str().unwrap_or_default().to_owned();
    if let Some(fault) = Fault::named_in(body["Subject"].as_str().unwrap_or_default(), "[fault:") {
        let Some(Keyed::Id(id, _)) = state.message_id(None, &body) else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        state.record("postmark", &body, None, true);
        return fault.answer(json!({
            "To": to, "SubmittedAt": "2026-12-01T12:00:00.0000000-05:00",
            "MessageID": format!("0a129aee-e1cd-480d-b08d-4f48548ff48d-{id}"), "ErrorCode": 0, "Message": "OK",
        }))
        .await;
    }
    let (inactive, active): (Vec<&str>, Vec<&str>) = to
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .partition(|a| a.starts_with("inactive"));
    const WHY: &str = "Inactive recipients are ones that have generated a hard bounce, a spam complaint, or a manual suppression.";
    if active.is_empty() {
        state.record("postmark", &body, None, false);
        return postmark_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            406,
            format!(
                "You tried to send to recipient(s) that have been marked as inactive. Found inactive addresses: {}. {WHY}",
                inactive.join(", ")
            ),
        );
    }
    let Some(Keyed::Id(id, _)) = state.message_id(None, &body) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    state.record("postmark", &body, None, true);
    let message_id = format!("0a129aee-e1cd-480d-b08d-4f48548ff48d-{id}");
    if let Ok(mut sent) = state.postmark_sent.lock() {
        sent.push(json!({
            "MessageID": message_id, "Status": "Sent", "Tag": "", "MessageStream": "outbound",
            "To": active.iter().map(|a| json!({"Email": a, "Name": null})).collect::<Vec<_>>(),
            "Recipients": active, "From": body["From"], "Subject": body["Subject"],
            "ReceivedAt": "2026-12-01T12:00:00.0000000-05:00",
            "Metadata": body.get("Metadata").cloned().unwrap_or_else(|| json!({})),
        }));
    }
    if !inactive.is_empty() {
        return postmark_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            406,
            format!(
                "Message OK, but will not deliver to these inactive addresses: {}. {WHY}",
                inactive.join(", ")
            ),
        );
    }
    Json(json!({
        "To": to, "SubmittedAt": "2026-12-01T12:00:00.0000000-05:00",
        "MessageID": message_id, "ErrorCode": 0, "Message": "OK",
    }))
    .into_response()
}

/// Postmark's outbound message search: `count` (1-500) and `offset` are
/// required (422 `ErrorCode` 1100 otherwise, as Postmark answers bad query
/// parameters), `recipient` and each `metadata_<key>` filter.
async fn postmark_search(
    State(state): State<Arc<EmailState>>,
    headers: axum::http::HeaderMap,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    state.record("postmark-search", &json!(query), None, false);
    let error = |status: StatusCode, code: i64, message: &str| {
        (status, Json(json!({"ErrorCode": code, "Message": message}))).into_response()
    };
    if header(&headers, "x-postmark-server-token").as_deref() != Some(POSTMARK_SERVER_TOKEN) {
        return error(
            StatusCode::UNAUTHORIZED,
            10,
            "Request does not contain a valid Server token.",
        );
    }
    let number = |name: &str| query.get(name).and_then(|v| v.parse::<usize>().ok());
    let (Some(count @ 1..=500), Some(offset)) = (number("count"), number("offset")) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            1100,
            "The 'count' and 'offset' parameters are required.",
        );
    };
    let sent = state
        .postmark_sent
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    let matching: Vec<Value> = sent
        .into_iter()
        .rev()
        .filter(|m| {
            query.iter().all(|(name, value)| match name.as_str() {
                "recipient" => m["Recipients"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|a| a == value)),
                name => match name.strip_prefix("metadata_") {
                    Some(key) => m["Metadata"][key] == *value,
                    None => true,
                },
            })
        })
        .collect();
    let page: Vec<Value> = matching.iter().skip(offset).take(count).cloned().collect();
    Json(json!({"TotalCount": matching.len(), "Messages": page})).into_response()
}

/// Starts the Supabase Auth stand-in: only its JWKS endpoint,
/// `GET /auth/v1/.well-known/jwks.json`, listing the stack's ES256 and
/// RS256 public keys as a project with asymmetric signing keys does, plus
/// a symmetric `oct` key ([`crate::tokens::OCT_KEY`]) that Supabase would
/// never publish: a JWKS is public, so the functions must never verify
/// with a key from it that anyone could sign with (tests prove they don't).
pub async fn auth(port: u16) -> anyhow::Result<Stub> {
    let jwks = json!({"keys": [
        crate::tokens::es256_jwk()?,
        crate::tokens::rs256_jwk()?,
        crate::tokens::oct_jwk()?,
    ]});
    let requests: Requests = Arc::default();
    let switch = Switch::default();
    let state = JwksState {
        jwks,
        requests: Arc::clone(&requests),
        switch: Arc::clone(&switch),
    };
    let app = Router::new()
        .route(JWKS_PATH, get(|s| jwks_answer(s, None)))
        .route(
            &format!("/fault/{{fault}}{JWKS_PATH}"),
            get(
                |s, axum::extract::Path(name): axum::extract::Path<String>| {
                    jwks_answer(s, Some(name))
                },
            ),
        )
        .route(
            &format!("/switch{JWKS_PATH}"),
            get(|s: State<JwksState>| async move {
                let fault = s.switch.lock().ok().and_then(|f| *f);
                match fault {
                    Some(fault) => jwks_answer(s, Some(fault.name().to_owned())).await,
                    None => jwks_answer(s, None).await,
                }
            }),
        )
        .with_state(state);
    serve_switched(app, port, requests, switch).await
}

/// Where Supabase Auth serves a project's JWKS.
pub const JWKS_PATH: &str = "/auth/v1/.well-known/jwks.json";

#[derive(Clone)]
struct JwksState {
    jwks: Value,
    requests: Requests,
    switch: Switch,
}

async fn jwks_answer(State(state): State<JwksState>, fault: Option<String>) -> Response {
    if let Ok(mut seen) = state.requests.lock() {
        seen.push(json!({"path": JWKS_PATH, "fault": fault}));
    }
    match fault.as_deref().map(Fault::parse) {
        None => Json(state.jwks).into_response(),
        Some(Some(fault)) => fault.answer(state.jwks).await,
        Some(None) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The ways a third party fails, which every stand-in can be told to act
/// out (issue 12, "every third party in each way it can fail"). Each but
/// [`Fault::Refuse`] is asked for per request: by the captcha token
/// (`fault-<name>-...`), the email subject (`[fault:<name>]`), the Storage
/// object path (containing `fault-<name>`) or the JWKS path
/// (`/fault/<name>/auth/v1/.well-known/jwks.json`; [`Stub::set_fault`] for
/// `/switch/...`). Where the fault still carries an answer (huge, slow,
/// truncated), it is the provider's normal success answer, and the request
/// was acted on (a mail sent): the caller's limits, not the answer, decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Connections are refused: a port bound and never listened on
    /// ([`refused_url`]); it cannot be asked for per request.
    Refuse,
    /// The connection is accepted and nothing is ever answered.
    Hang,
    /// A 503 with a short text body, as a provider (or its CDN) down.
    ServerError,
    /// A 200 whose JSON body is malformed.
    Malformed,
    /// A 200 whose `Content-Length` promises more than is sent: half the
    /// normal answer, then the connection is closed.
    Truncated,
    /// A 200 with the normal answer followed by [`HUGE_BODY_BYTES`] of
    /// JSON whitespace, chunked (no `Content-Length`): valid JSON that only
    /// a reader without a cap takes.
    Huge,
    /// The normal answer (padded to [`SLOW_BYTES`]), one byte every
    /// [`SLOW_BYTE_MS`] ms: the head at once, the whole answer after 10 s.
    Slow,
}

/// How much a [`Fault::Huge`] answer pads the normal one.
pub const HUGE_BODY_BYTES: usize = 32 * 1024 * 1024;
/// The pause between bytes of a [`Fault::Slow`] answer.
pub const SLOW_BYTE_MS: u64 = 50;
/// A [`Fault::Slow`] answer is padded to at least this many bytes.
pub const SLOW_BYTES: usize = 200;

impl Fault {
    /// Every fault, for test matrices.
    pub const ALL: [Fault; 7] = [
        Fault::Refuse,
        Fault::Hang,
        Fault::ServerError,
        Fault::Malformed,
        Fault::Truncated,
        Fault::Huge,
        Fault::Slow,
    ];

    /// The name used in tokens, subjects, paths.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Refuse => "refuse",
            Fault::Hang => "hang",
            Fault::ServerError => "5xx",
            Fault::Malformed => "malformed",
            Fault::Truncated => "truncated",
            Fault::Huge => "huge",
            Fault::Slow => "slow",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The fault named right after `marker` in `text` (`fault-huge...`,
    /// `[fault:huge]`), if any.
    fn named_in(text: &str, marker: &str) -> Option<Self> {
        let (_, rest) = text.split_once(marker)?;
        Self::ALL.into_iter().find(|f| rest.starts_with(f.name()))
    }

    /// Acts the fault out in place of `normal` (the provider's answer).
    async fn answer(self, normal: Value) -> Response {
        let body = normal.to_string().into_bytes();
        match self {
            Fault::Refuse | Fault::Hang => {
                std::future::pending::<()>().await;
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
            Fault::ServerError => {
                (StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable").into_response()
            }
            Fault::Malformed => json_bytes(b"{\"success\": true, \"id\": <html>".to_vec(), None),
            Fault::Truncated => {
                let promised = body.len();
                let half = body[..body.len() / 2].to_vec();
                // The close comes a moment later, so the head and the
                // half are on the wire first (an error in the same poll
                // would make hyper drop the connection with nothing sent).
                let chunks = futures_util::StreamExt::chain(
                    futures_util::stream::iter([Ok::<_, std::io::Error>(half)]),
                    futures_util::stream::once(async {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        Err(std::io::Error::other("closed by the stand-in"))
                    }),
                );
                json_stream(axum::body::Body::from_stream(chunks), Some(promised))
            }
            Fault::Huge => {
                const CHUNK: usize = 64 * 1024;
                let pad = axum::body::Bytes::from(vec![b' '; CHUNK]);
                let chunks = futures_util::stream::iter(
                    std::iter::once(axum::body::Bytes::from(body))
                        .chain(std::iter::repeat_n(pad, HUGE_BODY_BYTES / CHUNK))
                        .map(Ok::<_, std::io::Error>),
                );
                json_stream(axum::body::Body::from_stream(chunks), None)
            }
            Fault::Slow => {
                // Padded (JSON whitespace) so that even a short answer
                // takes SLOW_BYTES x SLOW_BYTE_MS = 10 s, past any timeout.
                let mut body = body;
                body.resize(body.len().max(SLOW_BYTES), b' ');
                let length = body.len();
                let chunks = futures_util::stream::unfold(body.into_iter(), |mut bytes| async {
                    let byte = bytes.next()?;
                    tokio::time::sleep(std::time::Duration::from_millis(SLOW_BYTE_MS)).await;
                    Some((Ok::<_, std::io::Error>(vec![byte]), bytes))
                });
                json_stream(axum::body::Body::from_stream(chunks), Some(length))
            }
        }
    }
}

fn json_bytes(body: Vec<u8>, length: Option<usize>) -> Response {
    json_stream(axum::body::Body::from(body), length)
}

fn json_stream(body: axum::body::Body, length: Option<usize>) -> Response {
    let mut response =
        (StatusCode::OK, [("content-type", "application/json")], body).into_response();
    if let Some(length) = length {
        response.headers_mut().insert(
            axum::http::header::CONTENT_LENGTH,
            axum::http::HeaderValue::from(length),
        );
    }
    response
}

/// The secret the hosted-Storage stand-in signs its URL tokens with (only
/// it checks them; hosted Storage keeps its own).
const STORAGE_STUB_SECRET: &str = "stub-hosted-storage-secret-at-least-32-chars";

/// Starts the hosted Supabase Storage stand-in: the two signing routes
/// attachment-urls' `storage` signer calls, as supabase/storage v1.70.6
/// answers them (see `crates/attachments/src/sign/storage.rs`):
///
/// - `POST /storage/v1/object/sign/{bucket}` with `{"expiresIn", "paths"}`:
///   `[{"error": null, "path", "signedURL": "/object/sign/{bucket}/{path}?token=..."}]`,
///   the token a JWT with `url` = `{bucket}/{path}` and `exp`; every path
///   has an object here, except one containing `missing`, which gets
///   Storage's per-path error.
/// - `POST /storage/v1/object/upload/sign/{bucket}/{path}`: `{"url":
///   "/object/upload/sign/{bucket}/{path}?token=...", "token"}`, valid two
///   hours (Storage's `UPLOAD_SIGNED_URL_EXPIRATION_TIME`).
///
/// Without an `apikey` header both answer Storage's error shape, HTTP 400
/// with `statusCode` "403". A path containing `fault-<name>` acts out that
/// [`Fault`].
pub async fn storage(port: u16) -> anyhow::Result<Stub> {
    let requests: Requests = Arc::default();
    let app = Router::new()
        .route("/storage/v1/object/sign/{bucket}", post(storage_sign_batch))
        .route(
            "/storage/v1/object/upload/sign/{bucket}/{*path}",
            post(storage_sign_upload),
        )
        .with_state(Arc::clone(&requests));
    serve(app, port, requests).await
}

fn storage_token(bucket: &str, path: &str, ttl: u64) -> Option<String> {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"url": format!("{bucket}/{path}"), "iat": now, "exp": now + i64::try_from(ttl).ok()?});
    crate::tokens::sign_hs256(STORAGE_STUB_SECRET, &claims).ok()
}

fn storage_unauthorized(headers: &axum::http::HeaderMap) -> Option<Response> {
    header(headers, "apikey").is_none().then(|| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"statusCode": "403", "error": "Unauthorized", "message": "invalid signature"})),
        )
            .into_response()
    })
}

async fn storage_sign_batch(
    State(requests): State<Requests>,
    axum::extract::Path(bucket): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Ok(mut seen) = requests.lock() {
        seen.push(json!({"route": "sign", "bucket": bucket, "body": body}));
    }
    if let Some(refusal) = storage_unauthorized(&headers) {
        return refusal;
    }
    let ttl = body["expiresIn"].as_u64().unwrap_or(60);
    let paths: Vec<&str> = body["paths"]
        .as_array()
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let items: Vec<Value> = paths
        .iter()
        .map(|path| match storage_token(&bucket, path, ttl) {
            Some(token) if !path.contains("missing") => json!({"error": null, "path": path,
                "signedURL": format!("/object/sign/{bucket}/{path}?token={token}")}),
            _ => {
                json!({"error": "Either the object does not exist or you do not have access to it",
                "path": path, "signedURL": null})
            }
        })
        .collect();
    match paths.iter().find_map(|p| Fault::named_in(p, "fault-")) {
        Some(fault) => fault.answer(Value::Array(items)).await,
        None => Json(Value::Array(items)).into_response(),
    }
}

async fn storage_sign_upload(
    State(requests): State<Requests>,
    axum::extract::Path((bucket, path)): axum::extract::Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Ok(mut seen) = requests.lock() {
        seen.push(json!({"route": "upload/sign", "bucket": bucket, "path": path}));
    }
    if let Some(refusal) = storage_unauthorized(&headers) {
        return refusal;
    }
    let Some(token) = storage_token(&bucket, &path, 7200) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let answer = json!({"url": format!("/object/upload/sign/{bucket}/{path}?token={token}"), "token": token});
    match Fault::named_in(&path, "fault-") {
        Some(fault) => fault.answer(answer).await,
        None => Json(answer).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// The raw answer to `GET path` on `stub`, until the server closes or
    /// `limit` bytes came (a hung or huge answer is cut there).
    async fn raw(url: &str, path: &str, limit: usize) -> Vec<u8> {
        let addr = url.trim_start_matches("http://");
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
        conn.write_all(request.as_bytes()).await.expect("send");
        let mut answer = Vec::new();
        let mut buf = vec![0; 64 * 1024];
        let read = async {
            while answer.len() < limit {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), read).await;
        answer
    }

    fn split(answer: &[u8]) -> (String, &[u8]) {
        let at = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a head");
        (
            String::from_utf8_lossy(&answer[..at]).to_ascii_lowercase(),
            &answer[at + 4..],
        )
    }

    /// The faults are what their names say on the wire (the JWKS routes
    /// take a GET, so they serve for all).
    #[tokio::test]
    async fn each_fault_is_what_it_says_on_the_wire() {
        let stub = auth(0).await.expect("stand-in");
        let path = |fault: Fault| format!("/fault/{}{JWKS_PATH}", fault.name());

        let answer = raw(stub.url(), JWKS_PATH, usize::MAX).await;
        let (head, body) = split(&answer);
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let normal: Value = serde_json::from_slice(body).expect("the normal JWKS");
        assert_eq!(normal["keys"].as_array().map(Vec::len), Some(3));

        let answer = raw(stub.url(), &path(Fault::Truncated), usize::MAX).await;
        let (head, body) = split(&answer);
        let promised: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .expect("a content-length")
            .parse()
            .expect("a number");
        assert!(body.len() < promised, "{} of {promised}", body.len());

        let answer = raw(stub.url(), &path(Fault::Huge), 8 * 1024 * 1024).await;
        let (head, _) = split(&answer);
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        assert!(answer.len() >= 8 * 1024 * 1024, "still coming");

        let answer = raw(stub.url(), &path(Fault::Slow), usize::MAX).await;
        let (head, body) = split(&answer);
        assert!(
            head.contains(&format!(
                "content-length: {}",
                normal.to_string().len().max(SLOW_BYTES)
            )),
            "{head}"
        );
        assert!(
            body.len() < 60,
            "one byte per {SLOW_BYTE_MS} ms: {} in 2 s",
            body.len()
        );

        assert!(raw(stub.url(), &path(Fault::Hang), usize::MAX)
            .await
            .is_empty());
        let (head, _) = split(&raw(stub.url(), &path(Fault::ServerError), usize::MAX).await);
        assert!(head.starts_with("http/1.1 503"), "{head}");
        let answer = raw(stub.url(), &path(Fault::Malformed), usize::MAX).await;
        let (_, body) = split(&answer);
        assert!(serde_json::from_slice::<Value>(body).is_err());

        let (url, _socket) = refused_url().expect("refused url");
        let refused = tokio::net::TcpStream::connect(url.trim_start_matches("http://")).await;
        assert_eq!(
            refused.map(|_| ()).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::ConnectionRefused)
        );
    }
}
