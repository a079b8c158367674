//! Worker entry point for `send-email`: glue only, the logic is in `edge-mail`.

use edge_mail::SendEmail;
use worker::{event, Context, Env, Request, Response, Result, ScheduleContext, ScheduledEvent};

thread_local!(static SERVICE: edge_worker::Slot<SendEmail> = edge_worker::Slot::default());

fn build(vars: &edge_core::Vars<'_>) -> std::result::Result<SendEmail, edge_core::Error> {
    SendEmail::from_vars(vars, edge_worker::sleep, edge_worker::now_secs)
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    edge_worker::run(req, &env, &SERVICE, edge_mail::NAME, build).await
}

/// The Cron Trigger (`[triggers] crons` in wrangler.toml): one reconciler
/// run, one log line.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let (ok, line) = match edge_worker::service(&env, &SERVICE, build) {
        Ok(service) => edge_mail::reconcile::log_line(service.reconcile().await),
        Err(err) => edge_mail::reconcile::log_line(Err(err)),
    };
    if ok {
        worker::console_log!("{line}");
    } else {
        worker::console_error!("{line}");
    }
}
