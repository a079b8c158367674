//! `send-email`'s handler after its first I/O, natively, against one local
//! stand-in that plays PostgREST (`reserve_email`, `finalize_email`) and the
//! provider (Resend's `POST /emails`, Postmark's `POST /email` and
//! `/email/withTemplate`).
//!
//! The end-to-end suite (`tests/e2e/tests/mail`) runs the real wasm against
//! the real database, but can only provoke what a healthy stack does: it
//! cannot make `finalize_email` fail after a send, make the provider hang,
//! or talk Postmark. Here each test scripts what every endpoint answers and
//! reads back every request (path, headers, JSON body), so each outcome of
//! reserve, send and finalize, and each combination of them, has a test
//! that says what the caller gets and what was asked of whom.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use edge_core::{Host, LogLine, Method, Request, Response, Sleep};
use edge_mail::SendEmail;
use edge_testing::clock::{never, wall_now as now};
use edge_testing::server::{self, Recorded, Server};
use edge_testing::tokens::user_token;
use edge_testing::vars::{self, ANON_KEY, SERVICE_KEY};
use edge_testing::{DemoUser, DEMO_JWT_SECRET};
use serde_json::{json, Value};

const API_KEY: &str = "stub-provider-key";
const FROM: &str = "Acme <support@acme.example>";
const MAIL_ID: &str = "0b9d2c44-5f1e-4c8a-9d3b-7a6e5f4d3c2b";
const RESEND_ID: &str = "re_4ef9a417-02e9-4d39-ad75-9611e0fcc33c";
const POSTMARK_ID: &str = "b7bc2f4a-e38e-4336-af7d-e6c392c2f817";
/// What the provider says when it refuses; must never reach the caller.
const PROVIDER_WORDS: &str = "The `to` field contains an invalid address";

const RESERVE: &str = "/rpc/reserve_email";
const FINALIZE: &str = "/rpc/finalize_email";
const RESEND: &str = "/emails";
const POSTMARK: &str = "/email";
const POSTMARK_TEMPLATE: &str = "/email/withTemplate";

// ------------------------------------------------------------- the stub

/// How one endpoint of the stand-in answers.
#[derive(Debug, Clone)]
enum Reply {
    /// What the real endpoint answers when all goes well (see [`success`]).
    Success,
    /// This status and JSON body.
    Json(u16, Value),
    /// Nothing, ever: the connection stays open.
    Never,
}

/// A PostgREST error for a `raise exception` in SQL, as PostgREST sends it.
fn raised(message: &str) -> Reply {
    Reply::Json(
        400,
        json!({"code": "P0001", "message": message, "details": null, "hint": null}),
    )
}

/// PostgREST when it has lost its database.
fn postgrest_down() -> Reply {
    Reply::Json(
        503,
        json!({"code": "PGRST001", "message": "Database client error. Retrying the connection.",
               "details": "no connection to the server", "hint": null}),
    )
}

/// What each endpoint answers. Tests start from the happy path
/// (`Script::default()`) and change only what they are about.
#[derive(Debug, Clone)]
struct Script {
    reserve: Reply,
    /// Both providers' send endpoints.
    provider: Reply,
    finalize: Reply,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            reserve: Reply::Success,
            provider: Reply::Success,
            finalize: Reply::Success,
        }
    }
}

/// The stand-in on a free local port, recording every request (path,
/// headers, JSON body); stops when dropped.
struct Stub {
    server: Server,
}

impl Stub {
    /// Only `POST` to the five endpoints; anything else is what a router
    /// answers (404, 405).
    async fn start(script: Script) -> Self {
        let server = Server::start(move |request| {
            let reply = match request.path.as_str() {
                RESERVE => &script.reserve,
                FINALIZE => &script.finalize,
                RESEND | POSTMARK | POSTMARK_TEMPLATE => &script.provider,
                _ => return server::Reply::status(404),
            };
            if request.method != "POST" {
                return server::Reply::status(405);
            }
            match reply {
                Reply::Success => {
                    server::Reply::json(200, &success(&request.path, &request.json()))
                }
                Reply::Json(status, answer) => server::Reply::json(*status, answer),
                Reply::Never => server::Reply::never(),
            }
        })
        .await;
        Self { server }
    }

    /// The requests to `path`, oldest first.
    fn calls(&self, path: &str) -> Vec<Recorded> {
        self.server.requests_to(path)
    }

    /// The one request to `path`; fails the test unless there was exactly one.
    fn only_call(&self, path: &str) -> Recorded {
        self.server.only_request_to(path)
    }

    /// `send-email` with PostgREST and the provider (`resend` or
    /// `postmark`) both pointed here, and `sleep` bounding the provider.
    fn service(&self, provider: &str, sleep: Sleep) -> SendEmail {
        self.service_with_provider_at(provider, self.server.url(), sleep)
    }

    /// The same, with the provider's API at `provider_url`.
    fn service_with_provider_at(
        &self,
        provider: &str,
        provider_url: &str,
        sleep: Sleep,
    ) -> SendEmail {
        vars::supabase(self.server.url())
            .demo_jwt_secret()
            .set("EMAIL_PROVIDER", provider)
            .set("EMAIL_API_KEY", API_KEY)
            .set("EMAIL_API_URL", provider_url)
            .set("EMAIL_FROM", FROM)
            .build(Host { sleep, now })
            .expect("config")
    }
}

/// The real endpoints' answers when all goes well: `reserve_email` takes 2
/// of 10 credits; `finalize_email` records the outcome it is given (sent,
/// refunded with the credits back, or unknown, still charged); the
/// providers accept.
fn success(path: &str, request: &Value) -> Value {
    match (path, request["p_outcome"].as_str()) {
        (RESERVE, _) => mail("reserved", 8, Some(false)),
        (FINALIZE, Some("refunded")) => mail("refunded", 10, None),
        (FINALIZE, Some(outcome)) => mail(outcome, 8, None),
        (FINALIZE, None) => {
            json!({"code": "PGRST202", "message": "no finalize_email without p_outcome"})
        }
        (RESEND, _) => json!({"id": RESEND_ID}),
        _ => json!({
            "To": request["To"], "SubmittedAt": "2026-11-23T10:00:00Z",
            "MessageID": POSTMARK_ID, "ErrorCode": 0, "Message": "OK",
        }),
    }
}

/// A mail as `reserve_email` (with `replayed`) and `finalize_email` answer it.
fn mail(status: &str, credits_remaining: i64, replayed: Option<bool>) -> Value {
    let mut mail = json!({
        "mail_id": MAIL_ID, "status": status,
        "credits_used": 2, "credits_remaining": credits_remaining,
    });
    if let Some(replayed) = replayed {
        mail["replayed"] = json!(replayed);
    }
    mail
}

// -------------------------------------------------------------- callers

/// A timer on which every bound is half a second: the stand-in's PostgREST
/// answers well within it (its calls are bounded on the same timer since
/// issue 12), a provider that never answers does not.
fn half_a_second(_: Duration) -> Pin<Box<dyn Future<Output = ()>>> {
    Box::pin(tokio::time::sleep(Duration::from_millis(500)))
}

fn member_token() -> String {
    user_token(DEMO_JWT_SECRET, DemoUser::Member)
}

fn custom_mail() -> Value {
    json!({"to": ["ada@example.com", "grace@example.com"], "subject": "Hello", "text": "Hi there"})
}

/// `POST /emails` as the demo member, through the whole pipeline.
async fn send(
    service: &SendEmail,
    token: &str,
    body: &Value,
    key: Option<&str>,
) -> (Response, LogLine) {
    let mut req = Request::new(Method::Post, "/emails")
        .with_header("authorization", &format!("Bearer {token}"))
        .with_header("content-type", "application/json")
        .with_body(body.to_string());
    if let Some(key) = key {
        req = req.with_header("idempotency-key", key);
    }
    edge_core::serve(service, req, || 0.0).await
}

/// The common case: the member sends `custom_mail()` through Resend with
/// the key `k-1`, and the provider call never times out.
async fn send_custom_mail(stub: &Stub) -> (Response, LogLine) {
    send(
        &stub.service("resend", never),
        &member_token(),
        &custom_mail(),
        Some("k-1"),
    )
    .await
}

fn body(response: &Response) -> Value {
    serde_json::from_slice(&response.body).expect("a JSON body")
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn a_send_is_reserved_as_the_caller_sent_once_and_finalized_as_the_service() {
    let stub = Stub::start(Script::default()).await;
    let token = member_token();
    let (r, _) = send(
        &stub.service("resend", never),
        &token,
        &custom_mail(),
        Some("k-1"),
    )
    .await;

    assert_eq!(r.status, 201, "{}", body(&r));
    assert_eq!(
        body(&r),
        json!({"mail_id": MAIL_ID, "status": "sent", "credits_used": 2, "credits_remaining": 8})
    );

    let reserve = stub.only_call(RESERVE);
    assert_eq!(
        reserve.header("authorization"),
        Some(format!("Bearer {token}").as_str()),
        "reserve acts as the caller"
    );
    assert_eq!(reserve.header("apikey"), Some(ANON_KEY));
    assert_eq!(reserve.json()["p_idempotency_key"], "k-1");
    assert_eq!(
        reserve.json()["p_recipients"],
        json!(["ada@example.com", "grace@example.com"])
    );
    assert_eq!(reserve.json()["p_mail_type"], "custom");
    assert_eq!(reserve.json()["p_content"], "Hi there");
    assert!(reserve.json()["p_html"].is_null(), "no html was sent");

    let provider = stub.only_call(RESEND);
    assert_eq!(
        provider.header("idempotency-key"),
        Some(format!("{}:k-1", DemoUser::Member.id()).as_str()),
        "the provider's key is per user"
    );
    assert_eq!(
        provider.header("authorization"),
        Some(format!("Bearer {API_KEY}").as_str())
    );
    assert_eq!(
        provider.json(),
        json!({"from": FROM, "to": ["ada@example.com", "grace@example.com"],
               "subject": "Hello", "text": "Hi there"})
    );

    let finalize = stub.only_call(FINALIZE);
    assert_eq!(
        finalize.header("authorization"),
        Some(format!("Bearer {SERVICE_KEY}").as_str()),
        "finalize acts as the service"
    );
    assert_eq!(finalize.header("apikey"), Some(SERVICE_KEY));
    assert_eq!(
        finalize.json(),
        json!({"p_mail_id": MAIL_ID, "p_provider": "resend", "p_outcome": "sent",
               "p_provider_message_id": RESEND_ID, "p_error": null})
    );
}

#[tokio::test]
async fn without_an_idempotency_key_reserve_and_the_provider_share_a_fresh_one() {
    let stub = Stub::start(Script::default()).await;
    let service = stub.service("resend", never);
    for _ in 0..2 {
        let (r, _) = send(&service, &member_token(), &custom_mail(), None).await;
        assert_eq!(r.status, 201);
    }
    let reserved: Vec<String> = stub
        .calls(RESERVE)
        .iter()
        .map(|c| {
            c.json()["p_idempotency_key"]
                .as_str()
                .expect("a key")
                .to_owned()
        })
        .collect();
    let sent: Vec<String> = stub
        .calls(RESEND)
        .iter()
        .map(|c| c.header("idempotency-key").expect("a key").to_owned())
        .collect();
    assert_ne!(reserved[0], reserved[1], "each request is a new send");
    for (reserved, sent) in reserved.iter().zip(&sent) {
        assert!(uuid::Uuid::parse_str(reserved).is_ok(), "{reserved}");
        assert_eq!(*sent, format!("{}:{reserved}", DemoUser::Member.id()));
    }
}

#[tokio::test]
async fn a_provider_refusal_is_422_rejected_refunded_and_keeps_the_providers_words_out() {
    let stub = Stub::start(Script {
        provider: Reply::Json(
            422,
            json!({"statusCode": 422, "name": "validation_error", "message": PROVIDER_WORDS}),
        ),
        ..Script::default()
    })
    .await;
    let (r, log) = send_custom_mail(&stub).await;

    assert_eq!(r.status, 422);
    let problem = body(&r);
    assert_eq!(problem["code"], "rejected");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("refunded")),
        "{problem}"
    );
    let text = String::from_utf8_lossy(&r.body);
    assert!(!text.contains(PROVIDER_WORDS), "{text}");
    assert!(!text.contains("validation_error"), "{text}");
    assert!(
        log.error
            .as_deref()
            .is_some_and(|e| e.contains(PROVIDER_WORDS)),
        "the provider's words go to the log: {log:?}"
    );

    let finalize = stub.only_call(FINALIZE);
    assert!(finalize.json()["p_provider_message_id"].is_null());
    assert!(
        finalize.json()["p_error"]
            .as_str()
            .is_some_and(|e| e.contains("422") && e.contains("validation_error")),
        "finalize is told why: {}",
        finalize.json()
    );
    assert_eq!(finalize.json()["p_outcome"], "refunded", "and to refund");
}

/// A scripted provider answer, its HTTP status, and what it must become.
struct Case {
    provider: &'static str,
    to: &'static [&'static str],
    status: u16,
    answer: Value,
}

fn resend_error(status: u16, name: &str) -> Case {
    Case {
        provider: "resend",
        to: &["ada@example.com", "grace@example.com"],
        status,
        answer: json!({"statusCode": status, "name": name, "message": PROVIDER_WORDS}),
    }
}

fn postmark_error(to: &'static [&'static str], status: u16, code: i64, message: &str) -> Case {
    Case {
        provider: "postmark",
        to,
        status,
        answer: json!({"ErrorCode": code, "Message": message}),
    }
}

const INACTIVE: &str = "You tried to send to recipient(s) that have been marked as inactive. \
    Found inactive addresses: ada@example.com. Inactive recipients are ones that have generated a hard bounce, \
    a spam complaint, or a manual suppression.";
const PARTLY: &str = "Message OK, but will not deliver to these inactive addresses: ada@example.com. \
    Inactive recipients are ones that have generated a hard bounce, a spam complaint, or a manual suppression.";

/// Sends `case.to` a mail through `case.provider` answering as scripted.
async fn send_against(case: &Case) -> (Stub, Response) {
    let stub = Stub::start(Script {
        provider: Reply::Json(case.status, case.answer.clone()),
        ..Script::default()
    })
    .await;
    let body = json!({"to": case.to, "subject": "Hello", "text": "Hi there"});
    let (r, _) = send(
        &stub.service(case.provider, never),
        &member_token(),
        &body,
        Some("k-1"),
    )
    .await;
    (stub, r)
}

#[tokio::test]
async fn an_outcome_that_may_have_been_a_send_is_502_unknown_and_not_refunded() {
    // Regression: each of these was refunded in full, handing out free
    // sends whenever the provider had in fact sent the mail.
    let cases = [
        resend_error(500, "application_error"),
        resend_error(500, "internal_server_error"),
        resend_error(503, "service_unavailable"),
        resend_error(409, "concurrent_idempotent_requests"),
        Case {
            provider: "resend",
            to: &["ada@example.com"],
            status: 200,
            answer: json!({}),
        },
        postmark_error(&["ada@example.com", "grace@example.com"], 422, 406, PARTLY),
        postmark_error(
            &["ada@example.com", "grace@example.com"],
            422,
            406,
            INACTIVE,
        ),
        postmark_error(&["ada@example.com"], 500, 0, "Internal server error"),
    ];
    for case in cases {
        let (stub, r) = send_against(&case).await;
        let what = format!("{} {} {}", case.provider, case.status, case.answer);

        assert_eq!(r.status, 502, "{what}");
        let problem = body(&r);
        assert_eq!(problem["code"], "bad_gateway", "{what}");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("being confirmed") && !detail.contains("were refunded"),
            "{what}: {detail}"
        );
        assert!(
            !String::from_utf8_lossy(&r.body).contains(PROVIDER_WORDS),
            "{what}"
        );
        let finalize = stub.only_call(FINALIZE);
        assert_eq!(
            finalize.json()["p_outcome"],
            "unknown",
            "{what}: the credits stay taken"
        );
        assert!(
            finalize.json()["p_error"]
                .as_str()
                .is_some_and(|e| e.contains(&case.status.to_string())),
            "{what}: {}",
            finalize.json()
        );
    }
}

#[tokio::test]
async fn a_provider_that_never_answers_is_502_unknown_and_not_refunded() {
    let stub = Stub::start(Script {
        provider: Reply::Never,
        ..Script::default()
    })
    .await;
    let (r, _) = send(
        &stub.service("resend", half_a_second),
        &member_token(),
        &custom_mail(),
        Some("k-1"),
    )
    .await;

    assert_eq!(r.status, 502);
    assert_eq!(body(&r)["code"], "bad_gateway");
    let finalize = stub.only_call(FINALIZE);
    assert_eq!(finalize.json()["p_outcome"], "unknown");
    assert!(
        finalize.json()["p_error"]
            .as_str()
            .is_some_and(|e| e.contains("no complete answer within")),
        "{}",
        finalize.json()
    );
}

#[tokio::test]
async fn a_certain_refusal_on_our_side_is_502_and_refunded() {
    let cases = [
        resend_error(401, "missing_api_key"),
        resend_error(403, "invalid_api_key"),
        resend_error(403, "validation_error"),
        resend_error(422, "invalid_from_address"),
        resend_error(429, "rate_limit_exceeded"),
        resend_error(429, "daily_quota_exceeded"),
        resend_error(409, "invalid_idempotent_request"),
        postmark_error(
            &["ada@example.com"],
            401,
            10,
            "Bad or missing server token.",
        ),
        postmark_error(&["ada@example.com"], 422, 400, "Sender signature not found"),
        postmark_error(&["ada@example.com"], 422, 405, "Not allowed to send"),
        postmark_error(&["ada@example.com"], 429, 429, "Rate limit exceeded"),
    ];
    for case in cases {
        let (stub, r) = send_against(&case).await;
        let what = format!("{} {} {}", case.provider, case.status, case.answer);

        assert_eq!(r.status, 502, "{what}");
        let detail = body(&r)["detail"].as_str().unwrap_or_default().to_owned();
        assert!(detail.contains("refunded"), "{what}: {detail}");
        assert_eq!(
            stub.only_call(FINALIZE).json()["p_outcome"],
            "refunded",
            "{what}"
        );
    }
}

#[tokio::test]
async fn a_refusal_of_the_message_is_422_and_refunded() {
    let cases = [
        resend_error(400, "validation_error"),
        resend_error(422, "missing_required_field"),
        postmark_error(&["ada@example.com"], 422, 300, "Invalid email request"),
        postmark_error(&["ada@example.com"], 422, 406, INACTIVE),
    ];
    for case in cases {
        let (stub, r) = send_against(&case).await;
        let what = format!("{} {} {}", case.provider, case.status, case.answer);

        assert_eq!(r.status, 422, "{what}");
        assert_eq!(body(&r)["code"], "rejected", "{what}");
        assert_eq!(
            stub.only_call(FINALIZE).json()["p_outcome"],
            "refunded",
            "{what}"
        );
    }
}

#[tokio::test]
async fn a_connection_refused_before_sending_is_refunded() {
    let stub = Stub::start(Script::default()).await;
    let (r, _) = send(
        &stub.service_with_provider_at("resend", "http://127.0.0.1:9", never),
        &member_token(),
        &custom_mail(),
        Some("k-1"),
    )
    .await;

    assert_eq!(r.status, 502);
    assert!(body(&r)["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("refunded"));
    let finalize = stub.only_call(FINALIZE);
    assert_eq!(finalize.json()["p_outcome"], "refunded");
    assert!(
        finalize.json()["p_error"]
            .as_str()
            .is_some_and(|e| e.contains("could not connect")),
        "{}",
        finalize.json()
    );
}

#[tokio::test]
async fn an_unknown_outcome_that_cannot_be_recorded_still_says_it_is_being_confirmed() {
    let stub = Stub::start(Script {
        provider: Reply::Json(500, json!({"statusCode": 500, "name": "application_error"})),
        finalize: postgrest_down(),
        ..Script::default()
    })
    .await;
    let (r, log) = send_custom_mail(&stub).await;

    assert_eq!(r.status, 502);
    assert!(body(&r)["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("being confirmed"));
    assert!(
        log.error
            .as_deref()
            .is_some_and(|e| e.contains(&format!("mail {MAIL_ID} stays reserved"))),
        "{log:?}"
    );
}

#[tokio::test]
async fn the_html_is_priced_and_logged_beside_the_text() {
    // Regression: only the text reached reserve_email, so the html was
    // neither priced nor logged.
    let stub = Stub::start(Script::default()).await;
    let html = format!("<p>{}</p>", "x".repeat(100_000 - 7));
    let mail =
        json!({"to": "ada@example.com", "subject": "Hello", "text": "Hi there", "html": html});
    let (r, _) = send(
        &stub.service("resend", never),
        &member_token(),
        &mail,
        Some("k-1"),
    )
    .await;

    assert_eq!(r.status, 201, "{}", body(&r));
    let reserve = stub.only_call(RESERVE);
    assert_eq!(reserve.json()["p_content"], "Hi there");
    assert_eq!(
        reserve.json()["p_html"],
        json!(html),
        "all of the html is priced and logged"
    );
    assert_eq!(
        stub.only_call(RESEND).json()["html"],
        json!(html),
        "as it is sent"
    );
}

#[tokio::test]
async fn a_template_without_a_subject_of_its_own_sends_none() {
    let stub = Stub::start(Script::default()).await;
    let template =
        json!({"to": "ada@example.com", "template_id": "welcome", "variables": {"name": "Ada"}});
    let (r, _) = send(
        &stub.service("resend", never),
        &member_token(),
        &template,
        Some("k-1"),
    )
    .await;

    assert_eq!(r.status, 201, "{}", body(&r));
    let reserve = stub.only_call(RESERVE);
    assert!(reserve.json()["p_subject"].is_null(), "{}", reserve.json());
    assert_eq!(reserve.json()["p_content"], r#"{"name":"Ada"}"#);
    assert_eq!(
        stub.only_call(RESEND).json(),
        json!({"from": FROM, "to": ["ada@example.com"],
               "template": {"id": "welcome", "variables": {"name": "Ada"}}}),
        "the template's own subject applies"
    );
}

#[tokio::test]
async fn when_reserve_refuses_nothing_is_sent_or_finalized() {
    let cases = [
        (
            raised("http_402: Not enough credits: this email costs 2, you have 1"),
            402,
            Some("Not enough credits: this email costs 2, you have 1"),
        ),
        (
            raised("http_422: Idempotency-Key was already used with a different email"),
            422,
            Some("Idempotency-Key was already used with a different email"),
        ),
        (postgrest_down(), 503, None),
        // An answer that is not a mail: our query or the function changed.
        (Reply::Json(200, json!([])), 500, None),
    ];
    for (reserve, status, detail) in cases {
        let stub = Stub::start(Script {
            reserve: reserve.clone(),
            ..Script::default()
        })
        .await;
        let (r, _) = send_custom_mail(&stub).await;

        assert_eq!(r.status, status, "{reserve:?}");
        if let Some(detail) = detail {
            assert_eq!(body(&r)["detail"], detail);
        }
        assert_eq!(stub.calls(RESERVE).len(), 1);
        assert!(stub.calls(RESEND).is_empty(), "{reserve:?}: nothing sent");
        assert!(
            stub.calls(FINALIZE).is_empty(),
            "{reserve:?}: nothing finalized"
        );
    }
}

#[tokio::test]
async fn a_replayed_sent_mail_is_200_without_a_second_send_or_finalize() {
    let stub = Stub::start(Script {
        reserve: Reply::Json(200, mail("sent", 8, Some(true))),
        ..Script::default()
    })
    .await;
    let (r, _) = send_custom_mail(&stub).await;

    assert_eq!(r.status, 200);
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        body(&r),
        json!({"mail_id": MAIL_ID, "status": "sent", "credits_used": 2, "credits_remaining": 8})
    );
    assert!(stub.calls(RESEND).is_empty(), "not sent again");
    assert!(stub.calls(FINALIZE).is_empty(), "not finalized again");
}

#[tokio::test]
async fn a_replayed_mail_still_reserved_unknown_or_refunded_is_409_and_not_sent_again() {
    for (status, says) in [
        ("reserved", "still being sent"),
        ("unknown", "still being confirmed"),
        ("refunded", "new Idempotency-Key"),
    ] {
        let stub = Stub::start(Script {
            reserve: Reply::Json(200, mail(status, 8, Some(true))),
            ..Script::default()
        })
        .await;
        let (r, _) = send_custom_mail(&stub).await;

        assert_eq!(r.status, 409, "{status}");
        assert_eq!(body(&r)["code"], "conflict");
        assert!(
            body(&r)["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(says),
            "{status}"
        );
        assert_eq!(r.header("idempotent-replayed"), None);
        assert!(stub.calls(RESEND).is_empty(), "not sent again");
        assert!(stub.calls(FINALIZE).is_empty(), "not finalized");
    }
}

#[tokio::test]
async fn a_finalize_failure_after_a_send_is_503_saying_the_mail_was_sent() {
    let stub = Stub::start(Script {
        finalize: postgrest_down(),
        ..Script::default()
    })
    .await;
    let (r, log) = send_custom_mail(&stub).await;

    // A database outage is a 503 with Retry-After on every route (issue 12);
    // this one says what was done: sent, left reserved for the reconciler.
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("5"));
    let problem = body(&r);
    assert_eq!(problem["code"], "unavailable");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("was sent") && !d.contains("refunded")),
        "{problem}"
    );
    assert!(
        log.error
            .as_deref()
            .is_some_and(|e| e.contains("finalize after send failed")),
        "{log:?}"
    );
    assert_eq!(stub.calls(RESEND).len(), 1, "sent once, not again");
    assert!(stub.only_call(FINALIZE).json()["p_error"].is_null());
}

#[tokio::test]
async fn a_finalize_failure_after_a_certain_refusal_is_503_and_the_mail_stays_reserved() {
    let rejected = Reply::Json(
        422,
        json!({"name": "validation_error", "message": PROVIDER_WORDS}),
    );
    let refused = Reply::Json(429, json!({"name": "rate_limit_exceeded"}));
    for provider in [rejected, refused] {
        let stub = Stub::start(Script {
            provider: provider.clone(),
            finalize: postgrest_down(),
            ..Script::default()
        })
        .await;
        let (r, log) = send_custom_mail(&stub).await;

        // Fails before: 500 (issue 12: never a 500 for a database outage).
        // The reservation was written and the refund is owed until the mail
        // is reconciled: a 503 whose detail says so, never a guessed refund.
        assert_eq!(r.status, 503, "{provider:?}");
        assert_eq!(r.header("retry-after"), Some("5"));
        assert_eq!(body(&r)["code"], "unavailable");
        assert!(
            body(&r)["detail"]
                .as_str()
                .is_some_and(|d| d.contains("stay reserved")),
            "{}",
            body(&r)
        );
        assert!(!String::from_utf8_lossy(&r.body).contains("validation_error"));
        assert!(
            log.error
                .as_deref()
                .is_some_and(|e| e.contains(&format!("mail {MAIL_ID} stays reserved"))),
            "{log:?}"
        );
        assert!(!stub.only_call(FINALIZE).json()["p_error"].is_null());
    }
}

#[tokio::test]
async fn postmark_gets_its_own_endpoints_token_and_fields() {
    let stub = Stub::start(Script::default()).await;
    let service = stub.service("postmark", never);

    let (r, _) = send(&service, &member_token(), &custom_mail(), Some("k-1")).await;
    assert_eq!(r.status, 201, "{}", body(&r));
    let custom = stub.only_call(POSTMARK);
    assert_eq!(custom.header("x-postmark-server-token"), Some(API_KEY));
    assert_eq!(custom.header("authorization"), None);
    assert_eq!(
        custom.header("idempotency-key"),
        None,
        "Postmark has no idempotency key"
    );
    // The send key goes along as metadata, for the reconciler's search.
    let send_key =
        |key: &str| edge_mail::provider::send_key(&format!("{}:{key}", DemoUser::Member.id()));
    assert_eq!(
        custom.json(),
        json!({"From": FROM, "To": "ada@example.com,grace@example.com",
               "Subject": "Hello", "TextBody": "Hi there", "MessageStream": "outbound",
               "Metadata": {"send_key": send_key("k-1")}})
    );
    assert_eq!(
        stub.only_call(FINALIZE).json(),
        json!({"p_mail_id": MAIL_ID, "p_provider": "postmark", "p_outcome": "sent",
               "p_provider_message_id": POSTMARK_ID, "p_error": null})
    );

    let template = json!({"to": "ada@example.com", "subject": "Welcome",
                          "template_id": "welcome", "variables": {"name": "Ada"}});
    let (r, _) = send(&service, &member_token(), &template, Some("k-2")).await;
    assert_eq!(r.status, 201, "{}", body(&r));
    let sent = stub.only_call(POSTMARK_TEMPLATE);
    assert_eq!(sent.header("x-postmark-server-token"), Some(API_KEY));
    assert_eq!(
        sent.json(),
        json!({"From": FROM, "To": "ada@example.com", "MessageStream": "outbound",
               "TemplateAlias": "welcome", "TemplateModel": {"name": "Ada"},
               "Metadata": {"send_key": send_key("k-2")}})
    );
    assert_eq!(stub.calls(RESEND).len(), 0);
}
