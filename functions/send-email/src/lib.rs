//! Worker entry point for `send-email`: glue only, the logic is in `edge-mail`.

use edge_mail::EmailSend;
use worker::{event, Context, Env, Request, Response, Result};

thread_local!(static SERVICE: edge_worker::Slot<EmailSend> = edge_worker::Slot::default());

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    edge_worker::run(req, &env, &SERVICE, edge_mail::NAME, EmailSend::from_vars).await
}
