//! The only crate that touches the `worker` crate's request types.
//!
//! A function's `lib.rs` is an `#[event(fetch)]` that calls [`run`] with its
//! [`edge_core::Service`] builder. [`run`] builds the service from the
//! worker `Env` once per isolate (config is read once, clients are reused),
//! converts the `worker::Request` into an [`edge_core::Request`], runs the
//! shared pipeline, converts the answer back and prints the log line.
//!
//! We convert by hand instead of enabling the `worker` crate's `http`
//! feature: measured on workerd, that feature doubles the CPU of a request.

use edge_core::{Error, Method, Request, Response, Service, Source, Vars};
use futures_util::StreamExt as _;
use std::cell::OnceCell;
use std::rc::Rc;
use std::thread::LocalKey;

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

/// Per-isolate storage for a built service; declare one per function with
/// `thread_local!(static SERVICE: Slot<MyService> = Slot::default());`.
pub type Slot<S> = OnceCell<Rc<S>>;

/// The isolate's service, built from `env` on first use (and again only
/// while building fails): for events other than fetch (a Cron Trigger's
/// `scheduled`), which need the same service without a request.
pub fn service<S: Service + 'static>(
    env: &worker::Env,
    slot: &'static LocalKey<Slot<S>>,
    build: fn(&Vars<'_>) -> Result<S, Error>,
) -> Result<Rc<S>, Error> {
    slot.with(|cell| match cell.get() {
        Some(service) => Ok(service.clone()),
        None => build(&Vars(&EnvSource(env))).map(|s| cell.get_or_init(|| Rc::new(s)).clone()),
    })
}

/// Handles one fetch event. `build` runs on the isolate's first request (and
/// again only while it fails, so a fixed secret takes effect without a
/// redeploy); a config error answers 500 and names the variable in the log.
pub async fn run<S: Service + 'static>(
    req: worker::Request,
    env: &worker::Env,
    slot: &'static LocalKey<Slot<S>>,
    name: &'static str,
    build: fn(&Vars<'_>) -> Result<S, Error>,
) -> worker::Result<worker::Response> {
    let service = match service(env, slot, build) {
        Ok(service) => service,
        Err(err) => {
            // Nothing to serve with; the body is not needed (limit 0).
            let request = from_worker(req, 0).await?;
            let (response, line) = edge_core::unserved(name, &request, err);
            worker::console_error!("{}", line.to_json());
            return to_worker(response);
        }
    };
    let request = from_worker(req, service.http().max_body_bytes).await?;
    let (response, line) = edge_core::serve(&*service, request, js_sys::Date::now).await;
    let line = line.to_json();
    match response.status {
        500.. => worker::console_error!("{line}"),
        _ => worker::console_log!("{line}"),
    }
    to_worker(response)
}

/// Converts the request. A body is read up to `limit` bytes and no further:
/// whose declared length is over the limit is not read at all, and one sent
/// without a length (chunked, HTTP/2) stops being read at the first chunk
/// past it. Either way the pipeline answers 413 (from the `content-length`
/// header, or from a body one byte over the limit), and the isolate never
/// holds more than the limit and one chunk: workerd keeps an isolate's wasm
/// memory once grown, and a 100 MB body would end every request on it.
async fn from_worker(mut req: worker::Request, limit: usize) -> worker::Result<Request> {
    let url = req.url()?;
    // The method as sent, from the JS request: `worker::Request::method`
    // turns every method it has no variant for (QUERY, PROPFIND, ...) into
    // GET, so those reached GET routes and were answered 200 instead of 405.
    let mut request = Request::new(Method::parse(&req.inner().method()), url.path());
    request.query = url.query().unwrap_or_default().to_owned();
    request.headers = req.headers().entries().collect();
    let declared = request
        .header("content-length")
        .and_then(|v| v.trim().parse::<usize>().ok());
    if matches!(request.method, Method::Get | Method::Head) {
        return Ok(request);
    }
    request.body = match declared {
        // workerd holds a body to its declared length, so it is read at once.
        Some(n) if n <= limit => req.bytes().await?,
        Some(_) => Vec::new(),
        None => read_capped(&mut req, limit).await?,
    };
    Ok(request)
}

/// The body's first `limit + 1` bytes at most: one byte over is enough for
/// the pipeline to tell it is too large.
async fn read_capped(req: &mut worker::Request, limit: usize) -> worker::Result<Vec<u8>> {
    let mut body = Vec::new();
    // No body (a POST without one) is no stream.
    let Ok(mut stream) = req.stream() else {
        return Ok(body);
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let room = (limit + 1).saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() > limit {
            break;
        }
    }
    Ok(body)
}

fn to_worker(response: Response) -> worker::Result<worker::Response> {
    let headers = worker::Headers::new();
    for (name, value) in response.headers.iter() {
        headers.append(name, value)?;
    }
    // 204/304 must have a null body: the JS Response constructor throws on
    // an empty but present one.
    let out = if response.body.is_empty() {
        worker::Response::empty()?
    } else {
        worker::Response::from_bytes(response.body)?
    };
    Ok(out.with_status(response.status).with_headers(headers))
}
