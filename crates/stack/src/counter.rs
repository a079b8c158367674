//! PostgREST behind a counting proxy, for one served function at a time.
//!
//! How many PostgREST round trips a route makes is part of its contract
//! (`/attachments/sign` is one request for any number of ids), and the
//! benchmark replays a route's exact PostgREST requests as the floor it
//! cannot beat. Both need every request a function sends, and only that
//! function's: PostgREST's own log mixes every caller and names no one. So a
//! function can be served again as a *counted* variant
//! ([`StackOptions::counted`]) whose `POSTGREST_URL` is a proxy of its own,
//! which forwards each request unchanged and records it with its answer.
//!
//! The proxy adds a loopback hop, so counted variants are for counting and
//! capturing, never for timing.

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::{
    body::{to_bytes, Body},
    extract::{Request, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Router,
};
use edge_testing::server::{self, Serving};
use serde_json::{json, Map, Value};

use crate::{Stack, StackOptions, Variant};

/// Larger than any body PostgREST is sent or answers in the tests.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Hop-by-hop headers (RFC 9110, 7.6.1) and the ones the client recomputes:
/// never forwarded, never recorded.
const SKIPPED_HEADERS: [&str; 6] = [
    "connection",
    "content-length",
    "host",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
];

/// A running counting proxy in front of PostgREST; stops when dropped.
pub struct Counter {
    serving: Serving,
    requests: Requests,
}

/// Every request forwarded, oldest first, as recorded by [`forward`].
type Requests = Arc<Mutex<Vec<Value>>>;

struct Proxy {
    upstream: String,
    client: reqwest::Client,
    requests: Requests,
}

impl Counter {
    /// Starts a proxy on a free port forwarding to `upstream`
    /// (`http://127.0.0.1:PORT`, no trailing slash).
    pub(crate) async fn start(upstream: &str) -> anyhow::Result<Counter> {
        let requests = Requests::default();
        let proxy = Arc::new(Proxy {
            upstream: upstream.to_owned(),
            client: reqwest::Client::builder()
                .build()
                .context("build the counting proxy's client")?,
            requests: Arc::clone(&requests),
        });
        let app = Router::new().fallback(forward).with_state(proxy);
        let serving = server::serve(app, 0)
            .await
            .context("start the PostgREST counting proxy")?;
        Ok(Counter { serving, requests })
    }

    /// Its base URL: what the counted variant has as `POSTGREST_URL`.
    pub fn url(&self) -> &str {
        self.serving.url()
    }

    /// How many requests reached PostgREST through it so far.
    pub fn count(&self) -> usize {
        self.requests.lock().map(|r| r.len()).unwrap_or_default()
    }

    /// Every request so far, oldest first: `{"method", "path"` (with the
    /// query string), `"headers"` (lowercase names, as sent), `"body"`,
    /// `"status"`, `"response"}`, bodies as text.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// Forwards one request to PostgREST as it came, and its answer back.
async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, MAX_BODY_BYTES).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            "body too large for the proxy",
        )
            .into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    // axum speaks http 1.x, reqwest 0.11 http 0.2: convert through bytes.
    let Ok(method) = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()) else {
        return (StatusCode::BAD_REQUEST, "unknown method").into_response();
    };
    let mut outbound = proxy
        .client
        .request(method, format!("{}{path}", proxy.upstream))
        .body(body.to_vec());
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        if SKIPPED_HEADERS.contains(&name.as_str()) {
            continue;
        }
        outbound = outbound.header(name.as_str(), value.as_bytes());
        headers.insert(
            name.as_str().to_owned(),
            Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()),
        );
    }
    let answer = match outbound.send().await {
        Ok(answer) => answer,
        Err(e) => {
            return (StatusCode::BAD_GATEWAY, format!("PostgREST: {e}")).into_response();
        }
    };
    let status = answer.status().as_u16();
    let mut response = Response::builder().status(status);
    for (name, value) in answer.headers() {
        if !SKIPPED_HEADERS.contains(&name.as_str()) {
            response = response.header(name.as_str(), value.as_bytes());
        }
    }
    let Ok(answer_body) = answer.bytes().await else {
        return (StatusCode::BAD_GATEWAY, "PostgREST's answer broke off").into_response();
    };
    if let Ok(mut requests) = proxy.requests.lock() {
        requests.push(json!({
            "method": parts.method.as_str(),
            "path": path,
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
            "status": status,
            "response": String::from_utf8_lossy(&answer_body),
        }));
    }
    response
        .body(Body::from(answer_body))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

impl StackOptions {
    /// Serves `function`'s build again as `name`, reaching PostgREST through
    /// a counting proxy of its own ([`Stack::postgrest_counter`]).
    #[must_use]
    pub fn counted(mut self, name: &str, function: &str) -> Self {
        self.variants.push(Variant {
            name: name.to_owned(),
            function: function.to_owned(),
            bindings: Vec::new(),
            count_postgrest: true,
        });
        self
    }
}

impl Stack {
    /// The counting proxy of a variant added with [`StackOptions::counted`].
    pub fn postgrest_counter(&self, name: &str) -> Option<&Counter> {
        self.counters.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_testing::server::{Reply, Server};

    #[tokio::test]
    async fn forwards_unchanged_and_records_each_request() {
        // Echoes what it was sent: the path and query, the bearer, the body.
        let upstream = Server::start(|request| {
            let uri = match &request.query {
                Some(query) => format!("{}?{query}", request.path),
                None => request.path.clone(),
            };
            let auth = request.header("authorization").unwrap_or_default();
            let body = String::from_utf8_lossy(&request.body);
            Reply::body(
                201,
                "text/plain; charset=utf-8",
                format!("{uri} {auth} {body}"),
            )
            .with_header("content-range", "0-0/*")
        })
        .await;

        let counter = Counter::start(upstream.url()).await.expect("proxy");
        let answer = reqwest::Client::new()
            .post(format!("{}/rpc/f?select=a", counter.url()))
            .header("authorization", "Bearer t")
            .body(r#"{"p":1}"#)
            .send()
            .await
            .expect("send");
        assert_eq!(answer.status().as_u16(), 201);
        assert_eq!(
            answer.headers().get("content-range").expect("header"),
            "0-0/*"
        );
        assert_eq!(
            answer.text().await.expect("body"),
            r#"/rpc/f?select=a Bearer t {"p":1}"#
        );

        assert_eq!(counter.count(), 1);
        let recorded = &counter.requests()[0];
        assert_eq!(recorded["method"], "POST");
        assert_eq!(recorded["path"], "/rpc/f?select=a");
        assert_eq!(recorded["headers"]["authorization"], "Bearer t");
        assert!(recorded["headers"].get("host").is_none());
        assert_eq!(recorded["body"], r#"{"p":1}"#);
        assert_eq!(recorded["status"], 201);
    }
}
