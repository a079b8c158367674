//! `billing-webhook`'s handler, natively, against a stand-in for PostgREST's
//! `POST /rpc/apply_billing_event` that records what it is asked and answers
//! as scripted. The end-to-end suite runs the real database; here each
//! answer the database can give (and PostgREST failing) maps to what the
//! provider is told, and what never reaches the database is checked not to.

use edge_billing::event::Provider;
use edge_billing::signature;
use edge_billing::BillingWebhooks;
use edge_core::{Host, Method, Request, Response};
use edge_testing::clock::{at, tokio_sleep};
use edge_testing::server::{Recorded, Reply, Server};
use edge_testing::vars::{self, SERVICE_KEY};
use serde_json::{json, Value};

const STRIPE_SECRET: &str = "whsec_handler_test";
const NOW: i64 = 1_757_505_700;
const APPLY: &str = "/rpc/apply_billing_event";

/// The host's timer for the PostgREST bound, as the e2e stack's workerd
/// has, and a clock stopped at `NOW`.
const HOST: Host = Host {
    sleep: tokio_sleep,
    now: at::<NOW>,
};

struct Stub {
    server: Server,
}

impl Stub {
    /// PostgREST answering every call with `status` and `reply`.
    async fn start(status: u16, reply: Value) -> Self {
        let server = Server::start(move |request| match request.path.as_str() {
            APPLY if request.method == "POST" => Reply::json(status, &reply),
            APPLY => Reply::status(405),
            _ => Reply::status(404),
        })
        .await;
        Self { server }
    }

    fn applied() -> Value {
        json!({"outcome": "applied", "error": null, "credits_granted": 0})
    }

    /// The calls to `apply_billing_event`, oldest first.
    fn calls(&self) -> Vec<Recorded> {
        self.server.requests_to(APPLY)
    }

    /// The function with only Stripe enabled.
    fn service(&self) -> BillingWebhooks {
        vars::supabase(self.server.url())
            .set("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)
            .build(HOST)
            .expect("config")
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
    let rpc = calls[0].json();
    assert_eq!(
        calls[0].header("authorization"),
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
    let vars = vars::supabase("http://127.0.0.1:9");
    assert!(vars.build::<BillingWebhooks>(HOST).is_ok());
}
