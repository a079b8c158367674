//! Worker entry point for `send-email`: glue only, the logic is in `edge-mail`.

use edge_mail::SendEmail;
use worker::{event, Context, Env, Request, Response, Result};

thread_local!(static SERVICE: edge_worker::Slot<SendEmail> = edge_worker::Slot::default());

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    edge_worker::run(req, &env, &SERVICE, edge_mail::NAME, |vars| {
        SendEmail::from_vars(vars, edge_worker::sleep, edge_worker::now_secs)
    })
    .await
}
