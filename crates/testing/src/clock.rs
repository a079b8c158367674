//! Fake timers and clocks for the hosts the services are built with in
//! tests (`edge_core::Sleep`, and the `fn() -> i64` unix-seconds clocks).

use std::{future::Future, pin::Pin, time::Duration};

/// A timer that never fires: no bound (`edge_core::within`) ever runs out,
/// so a test sees only what the work itself does. Fits `edge_core::Sleep`.
pub fn never(_: Duration) -> Pin<Box<dyn Future<Output = ()>>> {
    Box::pin(std::future::pending())
}

/// The wall clock, in unix seconds: for tests whose tokens or rows are
/// minted with the real time.
pub fn wall_now() -> i64 {
    chrono::Utc::now().timestamp()
}
