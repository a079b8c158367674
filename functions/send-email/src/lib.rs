//! Worker entry point for `send-email`: glue only, the logic is in `edge-mail`.

use edge_mail::SendEmail;
use worker::{event, Env, ScheduleContext, ScheduledEvent};

edge_worker::fetch!(SendEmail);

/// The Cron Trigger (`[triggers] crons` in wrangler.toml): one reconciler
/// run, one log line.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let (ok, line) = match edge_worker::service(&env, &SERVICE) {
        Ok(service) => edge_mail::reconcile::log_line(service.reconcile().await),
        Err(err) => edge_mail::reconcile::log_line(Err(err)),
    };
    if ok {
        worker::console_log!("{line}");
    } else {
        worker::console_error!("{line}");
    }
}
