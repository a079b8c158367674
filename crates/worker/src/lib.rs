//! The only crate that touches workerd's request and response.
//!
//! A function's `lib.rs` is one [`fetch!`] naming its
//! [`edge_core::Function`] (a service that can build itself from its config
//! and the [`HOST`]). That exports the fetch
//! handler workerd calls, which builds the service from the worker `Env`
//! once per isolate (config is read once, clients are reused), converts the
//! request into an [`edge_core::Request`], runs the shared pipeline,
//! converts the answer back and prints the log line ([`run`]).
//!
//! Measured in workerd (README, Performance), what a Rust route cost over a
//! JavaScript one was mostly crossings of the wasm boundary and promise
//! machinery, not Rust. So:
//! - the conversions are done in JavaScript (js/glue.js), each in one
//!   crossing: the `worker` crate's `Request` and `Response` cross it once
//!   per header and per field (and its `http` feature doubles the CPU of a
//!   request);
//! - an answer that needs no I/O (`/health`, a preflight, a 4xx decided
//!   from the request alone) is returned at once, without the promise and
//!   the microtask queue an `async` export goes through ([`respond`]).

use edge_core::{Error, Function, Host, Method, Request, Response, Source, Vars};
use std::cell::OnceCell;
use std::future::Future;
use std::rc::Rc;
use std::thread::LocalKey;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::web_sys;

/// The host as workerd is: its timer and its clock.
pub const HOST: Host = Host {
    sleep,
    now: now_secs,
};

/// The [`edge_core::Sleep`] for workerd (a JS timer).
pub fn sleep(
    duration: std::time::Duration,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
    Box::pin(worker::Delay::from(duration))
}

/// Unix time in seconds from the JS clock (which in workerd advances with
/// I/O, which is all token expiry needs).
pub fn now_secs() -> i64 {
    (js_sys::Date::now() / 1000.0) as i64
}

/// Reads a binding as a string: plain-text vars first, then secrets.
pub struct EnvSource<'a>(pub &'a worker::Env);

impl Source for EnvSource<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .var(name)
            .map(|v| v.to_string())
            .or_else(|_| self.0.secret(name).map(|s| s.to_string()))
            .ok()
    }
}

/// Per-isolate storage for a built service ([`fetch!`] declares it).
pub type Slot<S> = OnceCell<Rc<S>>;

/// The isolate's service, built from `env` on first use (and again only
/// while building fails): for events other than fetch (a Cron Trigger's
/// `scheduled`), which need the same service without a request.
pub fn service<S: Function>(
    env: &worker::Env,
    slot: &'static LocalKey<Slot<S>>,
) -> Result<Rc<S>, Error> {
    slot.with(|cell| match cell.get() {
        Some(service) => Ok(service.clone()),
        None => S::from_vars(&Vars(&EnvSource(env)), HOST)
            .map(|s| cell.get_or_init(|| Rc::new(s)).clone()),
    })
}

// For `fetch!`'s expansion in the function crates.
#[doc(hidden)]
pub mod __private {
    pub use ::wasm_bindgen;
    pub use ::worker;
}

/// Exports the fetch handler of the [`Function`] named. Also declares the
/// isolate's `SERVICE` slot, for other events (a Cron Trigger) to use
/// through [`service`].
#[macro_export]
macro_rules! fetch {
    ($service:ty) => {
        thread_local!(static SERVICE: $crate::Slot<$service> = $crate::Slot::default());

        /// The fetch handler workerd calls (through worker-build's shim).
        #[$crate::__private::wasm_bindgen::prelude::wasm_bindgen(wasm_bindgen = $crate::__private::wasm_bindgen)]
        pub fn fetch(
            req: $crate::JsRequest,
            env: $crate::__private::worker::Env,
            _ctx: $crate::__private::wasm_bindgen::JsValue,
        ) -> $crate::__private::wasm_bindgen::JsValue {
            $crate::respond(async move { $crate::run(req, &env, &SERVICE).await })
        }
    };
}

/// Runs `answer` and hands workerd the response itself when it is ready
/// at the first poll (nothing awaited I/O), else a promise of it. workerd
/// takes either from a fetch handler; the promise costs a `Promise`, a
/// closure and a microtask per request, which was a tenth of `/health`.
/// While pending, the future is driven from JavaScript one step per
/// promise it awaits ([`edge_outbound::driven`]), not by
/// wasm-bindgen-futures' executor.
pub fn respond(answer: impl Future<Output = JsResponse> + 'static) -> JsValue {
    edge_outbound::driven::drive(async move { answer.await.into() })
}

/// The request as workerd hands it to the fetch handler; taken instead of
/// the `worker` crate's wrapper, whose conversion crosses the wasm boundary
/// once per field and header.
pub type JsRequest = web_sys::Request;
/// The response handed back to workerd.
pub type JsResponse = web_sys::Response;

// The JS half of the conversions (js/glue.js, bundled by worker-build).
#[wasm_bindgen(module = "/js/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = requestHead)]
    fn request_head(request: &JsRequest) -> String;
    #[wasm_bindgen(js_name = requestBody)]
    fn request_body(request: &JsRequest, limit: f64) -> js_sys::Promise;
    #[wasm_bindgen(js_name = response)]
    fn js_response(status: u16, header_lines: &str, body: &[u8]) -> JsResponse;
}

/// Handles one fetch event. The service is built on the isolate's first
/// request (and again only while that fails, so a fixed secret takes effect
/// without a redeploy); a config error answers 500 and names the variable
/// in the log.
pub async fn run<S: Function>(
    req: JsRequest,
    env: &worker::Env,
    slot: &'static LocalKey<Slot<S>>,
) -> JsResponse {
    let name = S::NAME;
    let mut request = parse_head(&request_head(&req));
    let service = match service(env, slot) {
        Ok(service) => service,
        // Nothing to serve with; the body is not needed.
        Err(err) => return unserved(name, &request, err),
    };
    if !matches!(request.method, Method::Get | Method::Head) {
        match read_body(&req, service.http().max_body_bytes).await {
            Ok(body) => request.body = body,
            // The client went away or broke off mid-body.
            Err(why) => {
                return unserved(
                    name,
                    &request,
                    Error::bad_request(format!("The body could not be read: {why}")),
                )
            }
        }
    }
    let (response, line) = edge_core::serve(&*service, request, js_sys::Date::now).await;
    let line = line.to_json();
    match response.status {
        500.. => worker::console_error!("{line}"),
        _ => worker::console_log!("{line}"),
    }
    to_js(&response)
}

fn unserved(name: &'static str, request: &Request, err: Error) -> JsResponse {
    let (response, line) = edge_core::unserved(name, request, err);
    worker::console_error!("{}", line.to_json());
    to_js(&response)
}

/// The body, read up to `limit` bytes and no further (see `requestBody` in
/// js/glue.js; the pipeline answers 413 from `content-length` or from a
/// body one byte over the limit), in one crossing.
async fn read_body(req: &JsRequest, limit: usize) -> Result<Vec<u8>, String> {
    let body = edge_outbound::driven::settle(request_body(req, limit as f64))
        .await
        .map_err(|e| e.as_string().unwrap_or_else(|| format!("{e:?}")))?;
    Ok(js_sys::Uint8Array::new(&body).to_vec())
}

/// `requestHead`'s string: the method, the path and query, then one
/// `name:value` line per header. The method is the one sent:
/// `worker::Request`'s turns every method it has no variant for (QUERY,
/// PROPFIND, ...) into GET, so those once reached GET routes and were
/// answered 200, not 405.
fn parse_head(head: &str) -> Request {
    let mut lines = head.split('\n');
    let method = Method::parse(lines.next().unwrap_or_default());
    let mut request = Request::new(method, lines.next().unwrap_or("/"));
    request.headers = lines.filter_map(|line| line.split_once(':')).collect();
    request
}

fn to_js(response: &Response) -> JsResponse {
    let lines = edge_core::http::header_lines(response.headers.iter());
    js_response(response.status, &lines, &response.body)
}
