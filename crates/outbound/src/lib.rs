//! The one way a function calls a third party (captcha `siteverify`, the
//! email provider, hosted Storage, the JWKS) or PostgREST: [`call`].
//!
//! It bounds the **whole exchange** (connecting, sending, the answer's head
//! and every byte of its body) by one deadline (fetch() in workerd has no
//! timeout of its own), and reads the body chunk by chunk up to a cap, so a
//! provider answering tens of megabytes is cut off at the cap instead of
//! being copied whole into the isolate's wasm memory (which workerd never
//! gives back). A body that announces more than the cap in `Content-Length`
//! is not read at all. Inside workerd the exchange runs in JavaScript
//! (js/fetch.js) and crosses the wasm boundary once each way; natively it
//! runs on reqwest and the host's timer, which is what the unit tests below
//! exercise (the e2e tests exercise the workerd side).
//!
//! What it leaves to the caller: what an answer *means*. It returns the
//! status and the body bytes, or a [`Failure`] that says whether the
//! request may have reached the provider ([`Failure::may_have_been_sent`]),
//! which is what decides a refund for the email provider and nothing for
//! the others. It does not retry: every caller's third party either takes
//! an idempotency key or must not be asked twice within one request.

use std::fmt;
use std::time::Duration;

// Compiled natively too (it only does anything inside workerd), so that
// edge-worker, its user, builds in native `cargo` runs of the workspace.
pub mod driven;

use edge_core::{Error, Sleep};

/// How long the whole exchange may take, and how many body bytes to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// From the first byte sent to the last byte of the body read.
    pub timeout: Duration,
    /// The most body bytes accepted; one more and the answer is refused.
    pub max_body_bytes: usize,
}

/// A complete answer: status and the whole body (at most the cap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why there is no complete answer. The `String`s are for the log; they
/// never contain the request (its keys and secrets), only the transport's
/// words and the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The connection was never made, so nothing was sent. Only natively
    /// can this be told: inside workerd a failed fetch() says "Network
    /// connection lost." for a refused connection and for one lost
    /// mid-request alike (seen with workerd 2026-11-17), so there every
    /// transport failure is [`Failure::Lost`].
    NotSent(String),
    /// The request may have gone out, and the answer (its head or its
    /// body) broke off: a reset, a body shorter than its `Content-Length`.
    Lost(String),
    /// The exchange did not finish within [`Bounds::timeout`]: no answer, or
    /// a body still arriving (slowly) at the deadline.
    TimedOut(Duration),
    /// The body is longer than [`Bounds::max_body_bytes`]; reading stopped
    /// there (or never began, when `Content-Length` said so).
    TooLarge { status: u16, limit: usize },
}

impl Failure {
    /// Whether the provider may have received and acted on the request.
    pub fn may_have_been_sent(&self) -> bool {
        !matches!(self, Failure::NotSent(_))
    }

    /// The failure as the project's error for a dependency that did not
    /// answer usefully: 503 with `Retry-After`, `who` and the cause in the
    /// log only. Nothing has been written when a caller returns this.
    pub fn unavailable(&self, who: &str) -> Error {
        Error::unavailable(format!("{who}: {self}"))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NotSent(why) => write!(f, "could not connect: {why}"),
            Failure::Lost(why) => write!(f, "the answer broke off: {why}"),
            Failure::TimedOut(limit) => {
                write!(f, "no complete answer within {} ms", limit.as_millis())
            }
            Failure::TooLarge { status, limit } => {
                write!(f, "answered {status} with a body over {limit} bytes")
            }
        }
    }
}

/// Sends `request` and reads its answer, all of it within `bounds.timeout`,
/// at most `bounds.max_body_bytes` of body. At the deadline or the cap the
/// exchange is aborted (the body's reading cancelled), so the provider's
/// bytes stop flowing into the isolate too.
///
/// Natively the deadline runs on `sleep`; inside workerd the runtime's own
/// `AbortSignal.timeout` bounds the same whole exchange (`sleep` is unused
/// there: see js/fetch.js for why the call is made in JavaScript).
pub async fn call(
    request: reqwest::RequestBuilder,
    sleep: Sleep,
    bounds: Bounds,
) -> Result<Answer, Failure> {
    transport::call(request, sleep, bounds).await
}

#[cfg(not(target_arch = "wasm32"))]
mod transport {
    use super::*;
    use futures_util::StreamExt as _;

    pub(super) async fn call(
        request: reqwest::RequestBuilder,
        sleep: Sleep,
        bounds: Bounds,
    ) -> Result<Answer, Failure> {
        edge_core::within(
            sleep,
            bounds.timeout,
            exchange(request, bounds.max_body_bytes),
        )
        .await
        .unwrap_or(Err(Failure::TimedOut(bounds.timeout)))
    }

    async fn exchange(request: reqwest::RequestBuilder, cap: usize) -> Result<Answer, Failure> {
        let response = request.send().await.map_err(|e| {
            // The connection (TCP, TLS) was never made: nothing was sent.
            if e.is_connect() {
                Failure::NotSent(e.to_string())
            } else {
                Failure::Lost(e.to_string())
            }
        })?;
        let status = response.status().as_u16();
        let too_large = Failure::TooLarge { status, limit: cap };
        if response
            .content_length()
            .is_some_and(|n| n > u64::try_from(cap).unwrap_or(u64::MAX))
        {
            return Err(too_large);
        }
        let mut body = Vec::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| Failure::Lost(format!("reading the body: {e}")))?;
            if chunk.len() > cap.saturating_sub(body.len()) {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer { status, body })
    }
}

#[cfg(target_arch = "wasm32")]
mod transport {
    use super::*;
    use wasm_bindgen::prelude::wasm_bindgen;

    #[wasm_bindgen(module = "/js/fetch.js")]
    extern "C" {
        #[wasm_bindgen(js_name = boundedFetch)]
        fn bounded_fetch(
            method: &str,
            url: &str,
            header_lines: &str,
            body: &[u8],
            timeout_ms: f64,
            cap: f64,
        ) -> js_sys::Promise;

        type Outcome;
        #[wasm_bindgen(method, getter)]
        fn status(this: &Outcome) -> u16;
        #[wasm_bindgen(method, getter)]
        fn failure(this: &Outcome) -> Option<String>;
        #[wasm_bindgen(method, getter)]
        fn body(this: &Outcome) -> Vec<u8>;
    }

    pub(super) async fn call(
        request: reqwest::RequestBuilder,
        _sleep: Sleep,
        bounds: Bounds,
    ) -> Result<Answer, Failure> {
        let unsendable =
            |why: String| Failure::NotSent(format!("the request cannot be sent: {why}"));
        let request = request.build().map_err(|e| unsendable(e.to_string()))?;
        let headers = request
            .headers()
            .iter()
            .map(|(name, value)| Ok((name.as_str(), value.to_str()?)))
            .collect::<Result<Vec<_>, reqwest::header::ToStrError>>()
            .map_err(|e| unsendable(e.to_string()))?;
        let header_lines = edge_core::http::header_lines(headers);
        let body = match request.body() {
            None => &[][..],
            Some(body) => body
                .as_bytes()
                .ok_or_else(|| unsendable("a streamed body".into()))?,
        };
        let promise = bounded_fetch(
            request.method().as_str(),
            request.url().as_str(),
            &header_lines,
            body,
            bounds.timeout.as_millis() as f64,
            bounds.max_body_bytes as f64,
        );
        let outcome: Outcome = crate::driven::settle(promise)
            .await
            .map_err(|e| Failure::Lost(format!("{e:?}")))?
            .into();
        match outcome.failure() {
            None => Ok(Answer {
                status: outcome.status(),
                body: outcome.body(),
            }),
            Some(failure) => Err(match failure.as_str() {
                "timeout" => Failure::TimedOut(bounds.timeout),
                "too_large" => Failure::TooLarge {
                    status: outcome.status(),
                    limit: bounds.max_body_bytes,
                },
                // A refused connection and one lost mid-request both say
                // "Network connection lost." in workerd: see Failure::NotSent.
                lost => Failure::Lost(lost.trim_start_matches("lost: ").to_owned()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_testing::clock::tokio_sleep;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    const BOUNDS: Bounds = Bounds {
        timeout: Duration::from_millis(400),
        max_body_bytes: 1024,
    };

    /// A server that answers each connection with `write`, after reading
    /// the request head: raw bytes, since these cases are answers no HTTP
    /// server would send (a body shorter than its length, one byte at a
    /// time), which edge_testing's scripted server cannot.
    async fn server<F, Fut>(write: F) -> String
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut head = [0u8; 4096];
                let _ = conn.read(&mut head).await;
                tokio::spawn(write(conn));
            }
        });
        url
    }

    async fn get(url: &str) -> (Result<Answer, Failure>, Duration) {
        let started = Instant::now();
        let got = call(reqwest::Client::new().get(url), tokio_sleep, BOUNDS).await;
        (got, started.elapsed())
    }

    #[tokio::test]
    async fn an_answer_within_the_bounds_is_read_whole() {
        let url = server(|mut conn| async move {
            let _ = conn
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\nno")
                .await;
        })
        .await;
        let (got, _) = get(&url).await;
        assert_eq!(
            got,
            Ok(Answer {
                status: 503,
                body: b"no".to_vec()
            })
        );
    }

    /// The body read is inside the deadline: a server that sends its head
    /// at once and then one byte every 50 ms is cut off at the timeout.
    /// Seen failing with `call` awaiting `exchange` outside `within`: `Ok`
    /// after the whole 2 s.
    #[tokio::test]
    async fn the_deadline_covers_a_slow_body() {
        let url = server(|mut conn| async move {
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 40\r\n\r\n")
                .await;
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if conn.write_all(b"x").await.is_err() {
                    return;
                }
            }
        })
        .await;
        let (got, took) = get(&url).await;
        assert_eq!(got, Err(Failure::TimedOut(BOUNDS.timeout)));
        assert!(took < Duration::from_millis(900), "{took:?}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        let url = server(|conn| async move {
            let _hold = conn;
            std::future::pending::<()>().await;
        })
        .await;
        let (got, took) = get(&url).await;
        assert_eq!(got, Err(Failure::TimedOut(BOUNDS.timeout)));
        assert!(took < Duration::from_millis(900), "{took:?}");
        assert!(got.unwrap_err().may_have_been_sent());
    }

    /// A chunked body (no `Content-Length`) of 20 MB is read only to the
    /// cap. Seen failing with the loop's cap check removed: the answer was
    /// `Ok` with all 20 MB.
    #[tokio::test]
    async fn a_huge_chunked_body_stops_at_the_cap() {
        let url = server(|mut conn| async move {
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .await;
            let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "x".repeat(64 * 1024));
            for _ in 0..320 {
                if conn.write_all(chunk.as_bytes()).await.is_err() {
                    return;
                }
            }
            let _ = conn.write_all(b"0\r\n\r\n").await;
        })
        .await;
        let (got, _) = get(&url).await;
        assert_eq!(
            got,
            Err(Failure::TooLarge {
                status: 200,
                limit: BOUNDS.max_body_bytes
            })
        );
    }

    #[tokio::test]
    async fn a_declared_huge_body_is_not_read_at_all() {
        let url = server(|mut conn| async move {
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 50000000\r\n\r\n")
                .await;
            std::future::pending::<()>().await;
        })
        .await;
        let (got, took) = get(&url).await;
        assert!(matches!(got, Err(Failure::TooLarge { .. })), "{got:?}");
        assert!(took < BOUNDS.timeout, "decided from the head: {took:?}");
    }

    #[tokio::test]
    async fn a_body_exactly_at_the_cap_is_taken() {
        let url = server(|mut conn| async move {
            let body = "y".repeat(1024);
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(body.as_bytes()).await;
        })
        .await;
        let (got, _) = get(&url).await;
        assert_eq!(got.map(|a| a.body.len()), Ok(1024));
    }

    #[tokio::test]
    async fn a_body_cut_short_of_its_length_is_lost() {
        let url = server(|mut conn| async move {
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"success\":tr")
                .await;
        })
        .await;
        let (got, _) = get(&url).await;
        let failure = got.unwrap_err();
        assert!(matches!(failure, Failure::Lost(_)), "{failure:?}");
        assert!(failure.may_have_been_sent());
        let error = failure.unavailable("captcha provider");
        assert_eq!(error.status(), 503);
        assert_eq!(
            error.to_response("r").header("retry-after"),
            Some("5"),
            "worth retrying"
        );
    }

    /// A port bound but never listening refuses connections, and stays ours.
    #[tokio::test]
    async fn a_refused_connection_was_never_sent() {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let url = format!("http://{}/x", socket.local_addr().unwrap());
        let (got, _) = get(&url).await;
        let failure = got.unwrap_err();
        assert!(matches!(failure, Failure::NotSent(_)), "{failure:?}");
        assert!(!failure.may_have_been_sent());
    }
}
