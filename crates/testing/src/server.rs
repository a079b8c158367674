//! Local HTTP servers for tests: one scripted, recording stub
//! ([`Server`]), the axum routers the stand-ins are ([`serve`]), and a
//! server that takes connections and never answers ([`silent`]).
//!
//! A [`Server`] answers every request as its script says and records it
//! first (method, path, query, headers, body), so a test says what each
//! endpoint answers and then reads back what was asked of it:
//!
//! ```no_run
//! # async fn demo() {
//! use edge_testing::server::{Reply, Server};
//! use serde_json::json;
//!
//! let postgrest = Server::start(|request| match request.path.as_str() {
//!     "/rpc/apply_billing_event" => Reply::json(200, &json!({"outcome": "applied"})),
//!     _ => Reply::status(404),
//! })
//! .await;
//! // ... point the function at postgrest.url(), send it a request ...
//! let call = postgrest.only_request_to("/rpc/apply_billing_event");
//! assert_eq!(call.header("apikey"), Some("stub-anon-key"));
//! # }
//! ```
//!
//! Everything runs on the test's tokio runtime and stops when dropped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;

/// A server on a local port, serving until dropped.
pub struct Serving {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Serving {
    /// Its base URL (`http://127.0.0.1:<port>`).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `app` on 127.0.0.1:`port` (0: a free one). The stand-ins
/// ([`crate::stubs`]) are routers of their own and record what they
/// mean themselves; a test's own stub is a [`Server`].
pub async fn serve(app: Router, port: u16) -> anyhow::Result<Serving> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .with_context(|| format!("bind a local server on port {port}"))?;
    let url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Serving { url, task })
}

/// One request a [`Server`] received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path as sent (still percent-encoded; see [`Recorded::path_decoded`]).
    pub path: String,
    /// The query string, if any, without the `?`.
    pub query: Option<String>,
    /// Every header, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; `Value::Null` when it is not JSON (or empty).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The path with its percent-escapes decoded, as a server's router
    /// reads it (`/sign/t1/shot%201.png` is `/sign/t1/shot 1.png`).
    pub fn path_decoded(&self) -> String {
        percent_encoding::percent_decode_str(&self.path)
            .decode_utf8_lossy()
            .into_owned()
    }
}

/// What a [`Server`]'s script answers one request with.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    never: bool,
}

impl Reply {
    /// `status` with `body` as JSON.
    pub fn json(status: u16, body: &Value) -> Self {
        Self::body(status, "application/json", body.to_string())
    }

    /// `status` with `body` as it is, sent as `content_type` (a body that
    /// says it is JSON and is not, say).
    pub fn body(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("content-type".to_owned(), content_type.to_owned())],
            body: body.into(),
            never: false,
        }
    }

    /// `status` and no body.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            never: false,
        }
    }

    /// No answer at all, ever: the connection stays open (a party that
    /// hangs; the caller's timeout decides).
    pub fn never() -> Self {
        Self {
            never: true,
            ..Self::status(500)
        }
    }

    /// The same, with one more header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    async fn into_response(self) -> Response {
        if self.never {
            std::future::pending::<()>().await;
        }
        let mut response = (
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            self.body,
        )
            .into_response();
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

type Script = dyn Fn(&Recorded) -> Reply + Send + Sync;

/// The scripted, recording stub: on a free local port, every request
/// (any method, any path) is recorded, then answered as the script says.
/// Stops when dropped.
pub struct Server {
    serving: Serving,
    log: Arc<Mutex<Vec<Recorded>>>,
}

impl Server {
    /// Starts a stub answering each request with `script(&request)`.
    /// Panics (failing the test) if no local port can be bound.
    pub async fn start(script: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let log: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let script: Arc<Script> = Arc::new(script);
        let recorder = Arc::clone(&log);
        let app = Router::new().fallback(move |request: Request| {
            let script = Arc::clone(&script);
            let log = Arc::clone(&recorder);
            async move {
                let recorded = record(request).await;
                let reply = script(&recorded);
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(recorded);
                reply.into_response().await
            }
        });
        let serving = serve(app, 0).await.expect("a stub server on a local port");
        Self { serving, log }
    }

    /// Its base URL (`http://127.0.0.1:<port>`).
    pub fn url(&self) -> &str {
        self.serving.url()
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The requests to `path`, oldest first.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        let mut requests = self.requests();
        requests.retain(|r| r.path == path);
        requests
    }

    /// The one request to `path`; fails the test unless there was exactly one.
    pub fn only_request_to(&self, path: &str) -> Recorded {
        let mut requests = self.requests_to(path);
        assert_eq!(requests.len(), 1, "requests to {path}: {requests:#?}");
        requests.remove(0)
    }
}

async fn record(request: Request) -> Recorded {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(Body::new(body), usize::MAX)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    Recorded {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    }
}

/// A local server that takes every connection and never says a word (a
/// hung party: the caller's timeout decides). Stops when dropped.
pub async fn silent() -> Serving {
    stalled(None).await
}

/// A local server that reads each request's first bytes, writes `bytes`
/// (say, a head and part of the body it promises) and then holds the
/// connection open, saying nothing more; `None` writes nothing at all.
/// Stops when dropped.
pub async fn stalled(bytes: Option<&'static str>) -> Serving {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            if let Some(bytes) = bytes {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(bytes.as_bytes()).await;
            }
            held.push(socket);
        }
    });
    Serving { url, task }
}

/// A local URL whose connections are refused, and the socket that keeps
/// its port ours: bound, never listening, so the kernel answers every
/// connection with a reset and no other process can take the port while
/// the socket lives.
pub fn refused_url() -> anyhow::Result<(String, tokio::net::TcpSocket)> {
    let socket = tokio::net::TcpSocket::new_v4().context("a socket for the refused port")?;
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .context("bind the refused port")?;
    Ok((format!("http://{}", socket.local_addr()?), socket))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    async fn exchange(url: &str, request: &str) -> String {
        let addr = url.trim_start_matches("http://");
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        conn.write_all(request.as_bytes()).await.expect("send");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            conn.read_to_end(&mut answer),
        )
        .await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn a_server_records_each_request_and_answers_from_its_script() {
        let server = Server::start(|r| match r.path.as_str() {
            "/a" => Reply::json(201, &json!({"got": r.json()})).with_header("x-stub", "yes"),
            _ => Reply::status(404),
        })
        .await;
        let answer = exchange(
            server.url(),
            "POST /a?x=1 HTTP/1.1\r\nhost: h\r\nX-Key: k\r\ncontent-length: 7\r\nconnection: close\r\n\r\n{\"n\":1}",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
        assert!(answer.contains("x-stub: yes"), "{answer}");
        assert!(answer.ends_with(r#"{"got":{"n":1}}"#), "{answer}");
        let other = exchange(
            server.url(),
            "GET /b%20c HTTP/1.1\r\nhost: h\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert!(other.starts_with("HTTP/1.1 404"), "{other}");

        let call = server.only_request_to("/a");
        assert_eq!(call.method, "POST");
        assert_eq!(call.query.as_deref(), Some("x=1"));
        assert_eq!(call.header("x-key"), Some("k"));
        assert_eq!(call.json(), json!({"n": 1}));
        let requests = server.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[1].path_decoded(), "/b c");
    }

    #[tokio::test]
    async fn a_reply_that_never_comes_is_still_recorded() {
        let server = Server::start(|_| Reply::never()).await;
        let answer = exchange(server.url(), "GET / HTTP/1.1\r\nhost: h\r\n\r\n").await;
        assert!(answer.is_empty(), "{answer}");
        assert_eq!(server.requests().len(), 1);
        let silent = silent().await;
        assert!(exchange(silent.url(), "GET / HTTP/1.1\r\nhost: h\r\n\r\n")
            .await
            .is_empty());
    }
}
