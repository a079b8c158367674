//! Worker entry point for `ticket-intake`: glue only, the logic is in `edge-intake`.

use edge_intake::TicketIntake;
use worker::{event, Context, Env, Request, Response, Result};

thread_local!(static SERVICE: edge_worker::Slot<TicketIntake> = edge_worker::Slot::default());

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    edge_worker::run(req, &env, &SERVICE, edge_intake::NAME, |vars| {
        TicketIntake::from_vars(vars, edge_worker::sleep)
    })
    .await
}
