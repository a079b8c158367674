//! Billing webhooks: verified, exactly-once, in-order intake of payment providers' events.
//!
//! The `billing-webhook` function's logic, as an [`edge_core::Service`] that builds and
//! tests natively; `functions/billing-webhook` only adapts it to workerd.
//!
//! A delivery goes: signature over the raw bytes ([`signature`]), then the
//! provider's payload read into one provider-neutral [`event::Event`]
//! ([`stripe`], [`lemon_squeezy`], [`paddle`]), then one PostgREST call,
//! `apply_billing_event`, that records and applies it in a single
//! transaction. The database decides duplicates, staleness and credits, so
//! concurrent and repeated deliveries are safe without any state here.

pub mod event;
pub mod lemon_squeezy;
pub mod paddle;
mod parse;
pub mod providers;
pub mod signature;
pub mod stripe;

use edge_core::{Error, Function, Host, HttpConfig, Method, Request, Response, Service, Vars};
use edge_db::Supabase;
use event::{Event, Provider};
use providers::{Spec, PROVIDERS};
use serde::{Deserialize, Serialize};
use signature::{Failure, Secrets};

pub const NAME: &str = "billing-webhook";

/// Providers' events are larger than the forms and JSON the other functions
/// take (a Stripe invoice lists every line), so the default limit is higher.
const DEFAULT_MAX_BODY_BYTES: usize = 512 * 1024;

/// Stripe's own libraries default to 300 s; Paddle's SDK to 5 s, which our
/// clock skew could exceed, so both default to 300 s (a replay inside the
/// window is a duplicate event anyway).
const DEFAULT_TOLERANCE_SECS: u64 = 300;

/// One provider's settings: a provider with no secret is not enabled and its
/// route answers 404.
#[derive(Debug)]
struct Endpoint {
    secrets: Secrets,
    tolerance_secs: u64,
}

impl Endpoint {
    fn from_vars(vars: &Vars<'_>, spec: &Spec) -> Result<Self, Error> {
        Ok(Self {
            secrets: Secrets::new(vars.list(spec.secret_var)),
            // A provider that signs no timestamp has nothing to bound.
            tolerance_secs: match spec.tolerance_var {
                Some(name) => vars.parse_or(name, DEFAULT_TOLERANCE_SECS)?,
                None => 0,
            },
        })
    }
}

pub struct BillingWebhooks {
    http: HttpConfig,
    supabase: Supabase,
    /// One per row of [`PROVIDERS`], in its order.
    endpoints: Vec<Endpoint>,
    now: fn() -> i64,
}

impl Function for BillingWebhooks {
    /// Reads the config once; see the README's table of variables. `sleep`
    /// bounds the PostgREST call.
    fn from_vars(vars: &Vars<'_>, host: Host) -> Result<Self, Error> {
        let Host { sleep, now } = host;
        let supabase = Supabase::from_vars(vars, sleep)?;
        Ok(Self {
            http: HttpConfig::from_vars_with_body_limit(vars, DEFAULT_MAX_BODY_BYTES)?,
            supabase,
            endpoints: PROVIDERS
                .iter()
                .map(|spec| Endpoint::from_vars(vars, spec))
                .collect::<Result<_, _>>()?,
            now,
        })
    }
}

impl BillingWebhooks {
    /// Checks the provider's signature over the raw body; nothing has been
    /// parsed yet.
    fn verify(
        &self,
        provider: Provider,
        endpoint: &Endpoint,
        req: &Request,
    ) -> Result<(), Failure> {
        let now = u64::try_from((self.now)()).unwrap_or_default();
        signature::verify(
            provider,
            req.header(signature::header_name(provider)),
            &req.body,
            &endpoint.secrets,
            endpoint.tolerance_secs,
            now,
        )
    }

    async fn receive(
        &self,
        spec: &Spec,
        endpoint: &Endpoint,
        req: &Request,
    ) -> Result<Response, Error> {
        let provider = spec.provider;
        self.verify(provider, endpoint, req)
            .map_err(|failure| Error::InvalidSignature {
                reason: format!("{}: {}", provider.as_str(), failure.as_str()),
            })?;
        let event = (spec.parse)(&req.body)?;
        let applied = self.apply(&event).await?;
        match applied.outcome {
            Outcome::Failed => Err(Error::Rejected {
                detail: format!(
                    "The event was recorded but could not be applied: {}. A redelivery retries it.",
                    applied.error.as_deref().unwrap_or("unknown error")
                ),
                reason: format!(
                    "{} event {} ({}) failed: {}",
                    provider.as_str(),
                    event.event_id,
                    event.kind,
                    applied.error.as_deref().unwrap_or_default()
                ),
            }),
            outcome => Response::json(
                200,
                &Received {
                    received: true,
                    event_id: &event.event_id,
                    outcome,
                },
            ),
        }
    }

    /// One RPC, one transaction: see the migration of `apply_billing_event`.
    async fn apply(&self, event: &Event) -> Result<Applied, Error> {
        self.supabase
            .service()
            .execute(self.supabase.service().rpc(
                "apply_billing_event",
                &serde_json::json!({ "p_event": event }),
            ))
            .await
    }
}

/// What `apply_billing_event` answers.
#[derive(Debug, Deserialize)]
struct Applied {
    outcome: Outcome,
    error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Applied,
    Ignored,
    Stale,
    Duplicate,
    Failed,
}

#[derive(Serialize)]
struct Received<'a> {
    received: bool,
    event_id: &'a str,
    outcome: Outcome,
}

impl Service for BillingWebhooks {
    const NAME: &'static str = NAME;
    fn http(&self) -> &HttpConfig {
        &self.http
    }
    /// Providers call server to server; no browser page may.
    async fn allows_origin(&self, _origin: &str) -> bool {
        false
    }
    async fn probe(&self) -> Result<(), Error> {
        self.supabase.probe().await
    }
    async fn handle(&self, req: Request) -> Result<Response, Error> {
        let Some((spec, endpoint)) = PROVIDERS
            .iter()
            .zip(&self.endpoints)
            .find(|(spec, _)| req.route_is(spec.route))
        else {
            return Err(Error::NotFound);
        };
        if endpoint.secrets.is_empty() {
            return Err(Error::NotFound);
        }
        if req.method != Method::Post {
            return Err(Error::MethodNotAllowed {
                allow: vec![Method::Post],
            });
        }
        self.receive(spec, endpoint, &req).await
    }
}
