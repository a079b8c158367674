//! Worker entry point for `billing-webhook`: glue only, the logic is in `edge-billing`.

use edge_billing::BillingWebhooks;
use worker::{event, Context, Env, Request, Response, Result};

thread_local!(static SERVICE: edge_worker::Slot<BillingWebhooks> = edge_worker::Slot::default());

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    edge_worker::run(req, &env, &SERVICE, edge_billing::NAME, |vars| {
        BillingWebhooks::from_vars(vars, edge_worker::sleep, edge_worker::now_secs)
    })
    .await
}
