//! The request pipeline every function runs through.
//!
//! A function implements [`Service`]: its name, its HTTP settings, a deep
//! health probe and its routes. [`serve`] does the rest, identically for all
//! of them: a request id, CORS (preflight and response headers), the body
//! size limit, `GET /health`, turning an [`Error`] into problem+json, and one
//! structured log line. The glue in `edge-worker` converts `worker` types and
//! prints the line; native tests call [`serve`] directly.

use crate::config::{ConfigError, Vars};
use crate::error::Error;
use crate::http::{Method, Request, Response};
use serde::Serialize;

/// HTTP settings shared by every function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// `CORS_ALLOWED_ORIGINS`: comma-separated origins
    /// (`https://app.example.com`) allowed to call from a browser, or `*`.
    /// Empty: no cross-origin browser calls.
    pub cors_allowed_origins: Vec<String>,
    /// `MAX_BODY_BYTES`: the largest body accepted (default 65536); larger is 413.
    pub max_body_bytes: usize,
}

impl HttpConfig {
    pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        Self::from_vars_with_body_limit(vars, Self::DEFAULT_MAX_BODY_BYTES)
    }

    /// As [`Self::from_vars`], for a function whose bodies are usually larger
    /// than the default (providers' webhooks).
    pub fn from_vars_with_body_limit(
        vars: &Vars<'_>,
        default_max_body_bytes: usize,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            cors_allowed_origins: vars.list("CORS_ALLOWED_ORIGINS"),
            max_body_bytes: vars.parse_or("MAX_BODY_BYTES", default_max_body_bytes)?,
        })
    }

    pub fn allows_origin(&self, origin: &str) -> bool {
        self.cors_allowed_origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }
}

/// What a function provides to [`serve`].
#[allow(async_fn_in_trait)] // single-threaded wasm: futures need not be Send
pub trait Service {
    /// The function's name as deployed (`ticket-intake`), for logs and health.
    const NAME: &'static str;
    /// For `/health`. Every crate shares the workspace's version, so the
    /// default (this crate's) is the function's.
    fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }
    fn http(&self) -> &HttpConfig;
    /// Whether a browser page at `origin` may call this function and read
    /// its answers: decides CORS preflights, and whether every other
    /// answer carries `access-control-allow-origin`, errors included (a
    /// page that may send must be able to read why it was refused). The
    /// default is the static `CORS_ALLOWED_ORIGINS`; a function whose
    /// allowed origins live in the database overrides it. A handler that
    /// already knows the answer for its request may set the header itself,
    /// and then this is not asked again.
    async fn allows_origin(&self, origin: &str) -> bool {
        self.http().allows_origin(origin)
    }
    /// Deep health: whether the dependencies answer (PostgREST, as service).
    async fn probe(&self) -> Result<(), Error>;
    /// The function's own routes. `/health` never reaches here.
    async fn handle(&self, req: Request) -> Result<Response, Error>;
}

/// What the host lends a function: its timer and its clock. Built once by
/// the glue (`edge_worker::HOST` in workerd) or by a test with fakes, and
/// handed whole to [`Function::from_vars`], so every function is built the
/// same way whatever of it it uses.
#[derive(Clone, Copy)]
pub struct Host {
    /// Bounds calls natively (see `edge_outbound`); waits.
    pub sleep: crate::Sleep,
    /// Unix time in seconds: token expiry, signature tolerance.
    pub now: fn() -> i64,
}

/// A deployable function: a [`Service`] with a name and a way to be built
/// from its configuration. The glue (`edge_worker::fetch!`) needs nothing
/// else, so a function crate's `lib.rs` names only its type.
pub trait Function: Service + Sized + 'static {
    /// Reads the config once per isolate; see the README's table of
    /// variables. A missing or malformed variable is `Error::Config`.
    fn from_vars(vars: &Vars<'_>, host: Host) -> Result<Self, Error>;
}

/// The one log line written per request. Holds no header, token or body.
#[derive(Debug, Serialize)]
pub struct LogLine {
    pub level: &'static str,
    pub function: &'static str,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub duration_ms: f64,
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl LogLine {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Request headers a browser may send cross-origin: Supabase's client headers,
/// plus our idempotency and tracing headers.
const CORS_ALLOW_HEADERS: &str =
    "authorization, apikey, content-type, x-client-info, idempotency-key, x-request-id";
const CORS_EXPOSE_HEADERS: &str = "x-request-id, retry-after, location";

/// Runs one request through the pipeline. `now_ms` is the caller's clock
/// (`Date.now()` in workerd), read twice to time the request.
pub async fn serve<S: Service>(
    service: &S,
    req: Request,
    now_ms: impl Fn() -> f64,
) -> (Response, LogLine) {
    let started = now_ms();
    let request_id = request_id(&req);
    let method = req.method.as_str().to_owned();
    let path = req.path.clone();
    let origin = req.header("origin").map(str::to_owned);
    let is_preflight = is_preflight(&req);

    let result = dispatch(service, req).await;
    let (mut response, error) = match result {
        Ok(response) => (response, None),
        Err(err) => (err.to_response(&request_id), Some(err)),
    };

    // Fetch standard, "CORS protocol": the preflight has decided already
    // (and set the header when allowed); any other answer is readable by
    // the page exactly when its origin is allowed, whatever the status.
    if let Some(origin) = origin {
        let allowed = response.header("access-control-allow-origin").is_some()
            || (!is_preflight && service.allows_origin(&origin).await);
        if allowed {
            response.headers.set("access-control-allow-origin", &origin);
            response
                .headers
                .set("access-control-expose-headers", CORS_EXPOSE_HEADERS);
        }
    }
    // Whether the header is there depends on the request's Origin, so
    // caches must keep one answer per origin.
    response.headers.append("vary", "Origin");
    response.headers.set("x-request-id", &request_id);

    let status = response.status;
    let line = LogLine {
        level: if status >= 500 {
            "error"
        } else if status >= 400 {
            "warn"
        } else {
            "info"
        },
        function: S::NAME,
        method,
        path,
        status,
        duration_ms: (now_ms() - started).max(0.0),
        request_id,
        error: error.map(|e| match e.log_detail() {
            Some(detail) => format!("{}: {detail}", e.code()),
            None => e.code().to_owned(),
        }),
    };
    (response, line)
}

/// The answer and log line for a request no service could handle: the
/// function's configuration is missing or malformed (`Error::Config`), so it
/// was never built. The variable's name goes to the log, not the client.
pub fn unserved(function: &'static str, req: &Request, err: Error) -> (Response, LogLine) {
    let request_id = request_id(req);
    let response = err.to_response(&request_id);
    let line = LogLine {
        level: "error",
        function,
        method: req.method.as_str().to_owned(),
        path: req.path.clone(),
        status: response.status,
        duration_ms: 0.0,
        request_id,
        error: Some(format!(
            "{}: {}",
            err.code(),
            err.log_detail().unwrap_or_default()
        )),
    };
    (response, line)
}

fn is_preflight(req: &Request) -> bool {
    req.method == Method::Options && req.header("access-control-request-method").is_some()
}

async fn dispatch<S: Service>(service: &S, req: Request) -> Result<Response, Error> {
    if is_preflight(&req) {
        let origin = req.header("origin").unwrap_or_default();
        if !service.allows_origin(origin).await {
            return Err(Error::forbidden("This origin may not call this function."));
        }
        return Ok(preflight(&req, origin));
    }
    let limit = service.http().max_body_bytes;
    let declared = req
        .header("content-length")
        .and_then(|v| v.trim().parse::<usize>().ok());
    if req.body.len() > limit || declared.is_some_and(|n| n > limit) {
        return Err(Error::PayloadTooLarge { limit });
    }
    if req.route_is("/health") {
        return health(service, &req).await;
    }
    service.handle(req).await
}

/// CORS preflight (Fetch standard, "CORS-preflight request") from an
/// allowed `origin`. Answered here for every route so handlers never see
/// it.
fn preflight(req: &Request, origin: &str) -> Response {
    let method = req
        .header("access-control-request-method")
        .unwrap_or("POST");
    Response::new(204)
        .with_header("access-control-allow-origin", origin)
        .with_header(
            "access-control-allow-methods",
            &format!("{method}, OPTIONS"),
        )
        .with_header("access-control-allow-headers", CORS_ALLOW_HEADERS)
        .with_header("access-control-max-age", "600")
}

#[derive(Serialize)]
struct Health<'a> {
    status: &'static str,
    function: &'a str,
    version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    postgrest: Option<&'static str>,
}

/// `GET /health`: the version; with `?deep=1`, whether PostgREST answers
/// (503 when it does not, so a load balancer can act on the status alone).
async fn health<S: Service>(service: &S, req: &Request) -> Result<Response, Error> {
    if !matches!(req.method, Method::Get | Method::Head) {
        return Err(Error::MethodNotAllowed {
            allow: vec![Method::Get, Method::Head],
        });
    }
    // The values the document's enum lists; anything else was taken as
    // "not deep" and answered 200, so a typo (`deep=yes`) looked healthy
    // without ever asking PostgREST.
    let deep = match req.query_param("deep").as_deref() {
        None | Some("0" | "false") => false,
        Some("1" | "true") => true,
        Some(_) => return Err(Error::invalid("deep", "must be one of 1, true, 0, false")),
    };
    let probe = if deep {
        Some(service.probe().await)
    } else {
        None
    };
    if let Some(Err(err)) = probe {
        return Err(err);
    }
    Response::json(
        200,
        &Health {
            status: "ok",
            function: S::NAME,
            version: service.version(),
            postgrest: probe.map(|_| "ok"),
        },
    )
    .map(|r| r.with_header("cache-control", "no-store"))
}

/// Keeps a caller's `x-request-id` when it is short and plain (so traces
/// join up), else Cloudflare's `cf-ray`, else a fresh UUID.
fn request_id(req: &Request) -> String {
    let plain = |v: &&str| {
        !v.is_empty()
            && v.len() <= 64
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    };
    req.header("x-request-id")
        .filter(plain)
        .or_else(|| req.header("cf-ray").filter(plain))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    struct Echo {
        http: HttpConfig,
        healthy: bool,
        calls: Cell<u32>,
        /// Origins allowed beyond the static list, as a function whose
        /// origins live in its database has them.
        stored_origins: Vec<String>,
    }

    impl Service for Echo {
        const NAME: &'static str = "echo";
        fn version(&self) -> &'static str {
            "9.9.9"
        }
        fn http(&self) -> &HttpConfig {
            &self.http
        }
        async fn allows_origin(&self, origin: &str) -> bool {
            self.http.allows_origin(origin) || self.stored_origins.iter().any(|o| o == origin)
        }
        async fn probe(&self) -> Result<(), Error> {
            if self.healthy {
                Ok(())
            } else {
                Err(Error::unavailable("postgrest: connection refused"))
            }
        }
        async fn handle(&self, req: Request) -> Result<Response, Error> {
            self.calls.set(self.calls.get() + 1);
            if req.route_is("/fail") {
                return Err(Error::internal("constraint tickets_secret_idx violated"));
            }
            Ok(Response::new(200).with_body(req.body))
        }
    }

    fn echo(healthy: bool) -> Echo {
        Echo {
            http: HttpConfig {
                cors_allowed_origins: vec!["https://app.example.com".into()],
                max_body_bytes: 8,
            },
            healthy,
            calls: Cell::new(0),
            stored_origins: vec!["https://shop.example".into()],
        }
    }

    async fn run(svc: &Echo, req: Request) -> (Response, LogLine) {
        serve(svc, req, || 0.0).await
    }

    fn json(r: &Response) -> serde_json::Value {
        serde_json::from_slice(&r.body).expect("json body")
    }

    #[tokio::test]
    async fn health_reports_version_and_deep_probe() {
        let svc = echo(true);
        let (r, _) = run(&svc, Request::new(Method::Get, "/health")).await;
        assert_eq!(r.status, 200);
        assert_eq!(json(&r)["version"], "9.9.9");
        assert!(json(&r).get("postgrest").is_none());

        let (r, _) = run(&svc, Request::new(Method::Get, "/x/health?deep=1")).await;
        assert_eq!(json(&r)["postgrest"], "ok");

        let (r, log) = run(&echo(false), Request::new(Method::Get, "/health?deep=1")).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.header("retry-after"), Some("5"));
        assert!(log
            .error
            .as_deref()
            .unwrap_or("")
            .contains("connection refused"));
        assert_eq!(svc.calls.get(), 0, "health never reaches the handler");
    }

    /// Regression (issue 11 item 14): `?deep=` with any other value was a
    /// plain 200 that never probed. Seen failing before the fix: 200 for
    /// every value below.
    #[tokio::test]
    async fn deep_values_outside_the_enum_are_422() {
        let svc = echo(true);
        for query in [
            "deep=",
            "deep=yes",
            "deep=2",
            "deep=TRUE",
            "deep=%F0%9F%92%A9",
        ] {
            let (r, _) = run(&svc, Request::new(Method::Get, &format!("/health?{query}"))).await;
            assert_eq!(r.status, 422, "{query}");
            assert_eq!(
                r.header("content-type"),
                Some("application/problem+json"),
                "{query}"
            );
            assert_eq!(json(&r)["errors"][0]["field"], "deep", "{query}");
        }
        for (query, probed) in [
            ("deep=0", false),
            ("deep=false", false),
            ("deep=true", true),
        ] {
            let (r, _) = run(&svc, Request::new(Method::Get, &format!("/health?{query}"))).await;
            assert_eq!(r.status, 200, "{query}");
            assert_eq!(json(&r).get("postgrest").is_some(), probed, "{query}");
        }
    }

    #[tokio::test]
    async fn oversized_bodies_are_413_before_the_handler() {
        let svc = echo(true);
        let req = Request::new(Method::Post, "/x").with_body("123456789");
        let (r, _) = run(&svc, req).await;
        assert_eq!(r.status, 413);
        let req = Request::new(Method::Post, "/x").with_header("content-length", "100");
        assert_eq!(run(&svc, req).await.0.status, 413);
        assert_eq!(svc.calls.get(), 0);
    }

    #[tokio::test]
    async fn cors_preflight_and_headers_follow_the_allowlist() {
        let svc = echo(true);
        let pre = |origin: &str| {
            Request::new(Method::Options, "/tickets")
                .with_header("origin", origin)
                .with_header("access-control-request-method", "POST")
        };
        let (r, _) = run(&svc, pre("https://app.example.com")).await;
        assert_eq!(r.status, 204);
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert!(r
            .header("access-control-allow-headers")
            .unwrap_or("")
            .contains("authorization"));

        let (r, _) = run(&svc, pre("https://evil.example")).await;
        assert_eq!(r.status, 403);
        assert_eq!(r.header("access-control-allow-origin"), None);

        let req = Request::new(Method::Post, "/x").with_header("origin", "https://evil.example");
        let (r, _) = run(&svc, req).await;
        assert_eq!(r.header("access-control-allow-origin"), None);
        assert_eq!(
            r.header("vary"),
            Some("Origin"),
            "no header is an answer per origin too"
        );
    }

    /// Regression: origins a function allows beyond the static list (from
    /// its database) got a preflight without `access-control-allow-origin`
    /// and error answers without it, so browsers blocked every call.
    #[tokio::test]
    async fn origins_the_service_allows_get_cors_on_preflights_and_on_errors() {
        let svc = echo(true);
        let origin = "https://shop.example";
        let pre = Request::new(Method::Options, "/x")
            .with_header("origin", origin)
            .with_header("access-control-request-method", "POST");
        let (r, _) = run(&svc, pre).await;
        assert_eq!(r.status, 204);
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
        assert_eq!(r.header("vary"), Some("Origin"));

        for req in [
            Request::new(Method::Get, "/fail"),
            Request::new(Method::Post, "/x").with_body("123456789"),
            Request::new(Method::Post, "/x"),
        ] {
            let (r, _) = run(&svc, req.with_header("origin", origin)).await;
            assert_eq!(
                r.header("access-control-allow-origin"),
                Some(origin),
                "{}",
                r.status
            );
            assert!(r
                .header("access-control-expose-headers")
                .unwrap_or_default()
                .contains("retry-after"));
        }
    }

    #[tokio::test]
    async fn errors_become_problems_and_the_log_keeps_the_detail() {
        let svc = echo(true);
        let req = Request::new(Method::Get, "/fail").with_header("x-request-id", "abc-123");
        let (r, log) = run(&svc, req).await;
        assert_eq!(r.status, 500);
        assert_eq!(r.header("x-request-id"), Some("abc-123"));
        assert_eq!(json(&r)["request_id"], "abc-123");
        assert!(!String::from_utf8_lossy(&r.body).contains("tickets_secret_idx"));
        assert_eq!(log.status, 500);
        assert_eq!(log.level, "error");
        assert!(log.to_json().contains("\"function\":\"echo\""));
    }

    #[test]
    fn a_misconfigured_function_names_the_variable_in_the_log_only() {
        let err = Error::Config(crate::ConfigError::new(
            "CAPTCHA_SECRET",
            "is required but not set",
        ));
        let (r, log) = unserved("echo", &Request::new(Method::Post, "/tickets"), err);
        assert_eq!(r.status, 500);
        assert!(!String::from_utf8_lossy(&r.body).contains("CAPTCHA_SECRET"));
        assert!(log.to_json().contains("CAPTCHA_SECRET"));
        assert_eq!(log.path, "/tickets");
    }

    #[tokio::test]
    async fn odd_request_ids_are_replaced() {
        let svc = echo(true);
        let req = Request::new(Method::Get, "/health").with_header("x-request-id", "a b\n<script>");
        let (r, _) = run(&svc, req).await;
        let id = r.header("x-request-id").unwrap_or_default();
        assert_eq!(id.len(), 36, "a fresh uuid: {id}");
    }
}
