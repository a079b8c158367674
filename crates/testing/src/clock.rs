//! Fake timers and clocks for the hosts the services are built with in
//! tests (`edge_core::Host`: an `edge_core::Sleep` timer and a
//! `fn() -> i64` unix-seconds clock), so no test writes its own.

use std::{future::Future, pin::Pin, time::Duration};

/// A timer that never fires: no bound (`edge_core::within`) ever runs out,
/// so a test sees only what the work itself does. Fits `edge_core::Sleep`.
pub fn never(_: Duration) -> Pin<Box<dyn Future<Output = ()>>> {
    Box::pin(std::future::pending())
}

/// A timer that fires at once: every bound has run out before the work
/// answers (a call that went out is then "no answer in time").
pub fn instant(_: Duration) -> Pin<Box<dyn Future<Output = ()>>> {
    Box::pin(std::future::ready(()))
}

/// The real timer, on the test's tokio runtime: bounds last as long as
/// they say, as in workerd.
#[cfg(feature = "servers")]
pub fn tokio_sleep(d: Duration) -> Pin<Box<dyn Future<Output = ()>>> {
    Box::pin(tokio::time::sleep(d))
}

/// The wall clock, in unix seconds: for tests whose tokens or rows are
/// minted with the real time.
pub fn wall_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A clock stopped at `NOW` unix seconds (`at::<0>` is the epoch), for
/// tests whose tokens or signatures are made for one fixed moment.
pub fn at<const NOW: i64>() -> i64 {
    NOW
}
