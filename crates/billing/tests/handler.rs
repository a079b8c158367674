//! `billing-webhook`'s handler, natively, against a stand-in for PostgREST's
//! `POST /rpc/apply_billing_event` that records what it is asked and answers
//! as scripted. The end-to-end suite runs the real database; here each
//! answer the database can give (and PostgREST failing) maps to what the
//! provider is told, and what never reaches the database is checked not to.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use edge_billing::event::Provider;
use edge_billing::signature;
use edge_billing::BillingWebhooks;
use edge_core::{Function, Host, Method, Request, Response, Vars};
use serde_json::{json, Value};

const SERVICE_KEY: &str = "stub-service-role-key";
const STRIPE_SECRET: &str = "whsec_handler_test";
const NOW: i64 = 1_757_505_700;

/// The host's timer for the PostgREST bound, as the e2e stack's workerd has.
fn tokio_sleep(d: std::time::Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
    Box::pin(tokio::time::sleep(d))
}

fn now() -> i64 {
    NOW
}

const HOST: Host = Host {
    sleep: tokio_sleep,
    now,
};

struct Stub {
    url: String,
    calls: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Shared = (Arc<Mutex<Vec<(HeaderMap, Value)>>>, u16, Value);

async fn answer(
    State((calls, status, reply)): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    calls.lock().expect("lock").push((headers, body));
    let status = StatusCode::from_u16(status).expect("status");
    (status, Json(reply)).into_response()
}

impl Stub {
    /// PostgREST answering every call with `status` and `reply`.
    async fn start(status: u16, reply: Value) -> Self {
        let calls = Arc::new(Mutex::default());
        let app = Router::new()
            .route("/rpc/apply_billing_event", post(answer))
            .with_state((calls.clone(), status, reply));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("stub server");
        });
        Self { url, calls, task }
    }

    fn applied() -> Value {
        json!({"outcome": "applied", "error": null, "credits_granted": 0})
    }

    fn calls(&self) -> Vec<(HeaderMap, Value)> {
        self.calls.lock().expect("lock").clone()
    }

    /// The function with only Stripe enabled.
    fn service(&self) -> BillingWebhooks {
        let vars = [
            ("POSTGREST_URL", self.url.as_str()),
            ("SUPABASE_ANON_KEY", "stub-anon-key"),
            ("SUPABASE_SERVICE_ROLE_KEY", SERVICE_KEY),
            ("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET),
        ];
        BillingWebhooks::from_vars(&Vars(&vars), HOST).expect("config")
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/stripe/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).expect(&path)
}

fn stripe_delivery(body: &[u8], secret: &str) -> Request {
    let header = signature::sign(Provider::Stripe, secret, NOW as u64, body);
    Request::new(Method::Post, "/webhooks/stripe")
        .with_header("content-type", "application/json")
        .with_header("stripe-signature", &header)
        .with_body(body.to_vec())
}

async fn send(stub: &Stub, req: Request) -> (Response, Value) {
    let (response, _log) = edge_core::serve(&stub.service(), req, || 0.0).await;
    let body = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response, body)
}

#[tokio::test]
async fn a_verified_delivery_is_one_rpc_with_the_service_key() {
    let stub = Stub::start(200, Stub::applied()).await;
    let body = fixture("customer.subscription.created");
    let (response, answer) = send(&stub, stripe_delivery(&body, STRIPE_SECRET)).await;
    assert_eq!(response.status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"received": true, "event_id": "evt_1S5AcmeSubCreated00001", "outcome": "applied"})
    );
    let calls = stub.calls();
    assert_eq!(calls.len(), 1);
    let (headers, rpc) = &calls[0];
    assert_eq!(
        headers.get("authorization").and_then(|v| v.to_str().ok()),
        Some(format!("Bearer {SERVICE_KEY}").as_str())
    );
    let event = &rpc["p_event"];
    assert_eq!(event["provider"], "stripe");
    assert_eq!(event["event_id"], "evt_1S5AcmeSubCreated00001");
    assert_eq!(event["type"], "customer.subscription.created");
    assert_eq!(event["change"]["kind"], "subscription");
    assert_eq!(
        event["change"]["subscription"]["id"],
        "sub_1S5AcmeProSubscription01"
    );
}

#[tokio::test]
async fn every_outcome_but_failed_is_200() {
    for outcome in ["ignored", "stale", "duplicate"] {
        let stub = Stub::start(200, json!({"outcome": outcome, "error": null})).await;
        let body = fixture("invoice.paid");
        let (response, answer) = send(&stub, stripe_delivery(&body, STRIPE_SECRET)).await;
        assert_eq!(response.status, 200, "{outcome}: {answer}");
        assert_eq!(answer["outcome"], outcome);
    }
}

#[tokio::test]
async fn a_failed_event_is_422_with_the_reason() {
    let reason = "no account is known for stripe customer cus_T1AcmeOwner0001";
    let stub = Stub::start(200, json!({"outcome": "failed", "error": reason})).await;
    let body = fixture("customer.subscription.created");
    let (response, answer) = send(&stub, stripe_delivery(&body, STRIPE_SECRET)).await;
    assert_eq!(response.status, 422, "{answer}");
    assert_eq!(answer["code"], "rejected");
    let detail = answer["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(reason), "{detail}");
}

#[tokio::test]
async fn postgrest_down_is_503_so_the_provider_retries() {
    let down = json!({"code": "PGRST001", "message": "Database client error. Retrying the connection.",
                      "details": "no connection to the server", "hint": null});
    let stub = Stub::start(503, down).await;
    let body = fixture("invoice.paid");
    let (response, answer) = send(&stub, stripe_delivery(&body, STRIPE_SECRET)).await;
    assert_eq!(response.status, 503, "{answer}");
    assert!(response.header("retry-after").is_some());
}

#[tokio::test]
async fn nothing_unverified_reaches_the_database() {
    let stub = Stub::start(200, Stub::applied()).await;
    let body = fixture("invoice.paid");
    let wrong_secret = stripe_delivery(&body, "whsec_someone_else");
    let (response, answer) = send(&stub, wrong_secret).await;
    assert_eq!(response.status, 400);
    assert_eq!(answer["code"], "invalid_signature");

    let mut tampered = stripe_delivery(&body, STRIPE_SECRET);
    tampered.body[10] ^= 1;
    assert_eq!(send(&stub, tampered).await.0.status, 400);

    // Providers not configured are not there at all.
    let paddle = Request::new(Method::Post, "/webhooks/paddle").with_body(body.clone());
    assert_eq!(send(&stub, paddle).await.0.status, 404);
    let get = Request::new(Method::Get, "/webhooks/stripe");
    let (response, _) = send(&stub, get).await;
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("POST"));
    // No browser page may call it.
    let preflight = Request::new(Method::Options, "/webhooks/stripe")
        .with_header("origin", "https://evil.example")
        .with_header("access-control-request-method", "POST");
    assert_eq!(send(&stub, preflight).await.0.status, 403);

    assert!(stub.calls().is_empty(), "{:?}", stub.calls());
}

#[tokio::test]
async fn a_verified_body_that_is_not_json_is_400_and_not_recorded() {
    let stub = Stub::start(200, Stub::applied()).await;
    let (response, answer) = send(&stub, stripe_delivery(b"not json", STRIPE_SECRET)).await;
    assert_eq!(response.status, 400, "{answer}");
    assert_eq!(answer["code"], "bad_request");
    assert!(stub.calls().is_empty());
}

#[test]
fn no_provider_configured_is_still_a_valid_config() {
    // Health must answer while the secrets are being set up.
    let vars = [
        ("POSTGREST_URL", "http://127.0.0.1:9"),
        ("SUPABASE_ANON_KEY", "a"),
        ("SUPABASE_SERVICE_ROLE_KEY", "s"),
    ];
    assert!(BillingWebhooks::from_vars(&Vars(&vars), HOST).is_ok());
}
