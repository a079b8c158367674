//! Worker entry point for `attachment-urls`: glue only, the logic is in `edge-attachments`.

use edge_attachments::AttachmentUrls;
use worker::{event, Context, Env, Request, Response, Result};

thread_local!(static SERVICE: edge_worker::Slot<AttachmentUrls> = edge_worker::Slot::default());

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    edge_worker::run(req, &env, &SERVICE, edge_attachments::NAME, |vars| {
        AttachmentUrls::from_vars(vars, edge_worker::sleep, edge_worker::now_secs)
    })
    .await
}
