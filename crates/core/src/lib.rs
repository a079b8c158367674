//! The core every function shares: the project's own request and response
//! types, the one [`Error`] type and its problem+json rendering, config
//! reading, and the request pipeline ([`service::serve`]) that adds request
//! ids, CORS, body limits, `/health` and a log line around each handler.
//!
//! It knows nothing of the `worker` crate, JWTs or PostgREST: those live in
//! `edge-worker`, `edge-auth` and `edge-db`, so this crate builds and tests
//! natively with nothing but serde and a few small pure-Rust crates.

pub mod config;
pub mod digest;
pub mod error;
pub mod http;
pub mod service;

pub use config::{ConfigError, Secret, Source, Vars};
pub use digest::sha256_hex;
pub use error::{Error, FieldError, FieldErrors, Result};
pub use http::{BodyKind, Headers, Method, Request, Response};
pub use service::{serve, unserved, Function, Host, HttpConfig, LogLine, Service};

/// A timer, passed in by the host: `worker::Delay` in workerd, tokio's
/// sleep in native tests. Handlers use it to bound calls to third parties.
pub type Sleep =
    fn(std::time::Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// Runs `work` for at most `limit` on the host's timer: `None` when time ran
/// out first. fetch() in workerd has no timeout of its own, so every call
/// to a third party goes through this.
pub async fn within<T>(
    sleep: Sleep,
    limit: std::time::Duration,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    let work = std::pin::pin!(work);
    match futures_util::future::select(work, sleep(limit)).await {
        futures_util::future::Either::Left((done, _)) => Some(done),
        futures_util::future::Either::Right(_) => None,
    }
}
