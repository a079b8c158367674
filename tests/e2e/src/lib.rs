//! Support for the end-to-end tests: the shared [`World`] (a running stack,
//! an HTTP client, the OpenAPI document) and a small harness that runs async
//! cases against it with `libtest-mimic`, so `cargo test -p edge-e2e -- name`
//! filters and reports like any test binary.
//!
//! Cases post with [`World::post`] and check an answer on its [`Reply`]:
//! `reply.expect(201)?.documented(&world.openapi, "POST", path)?`, and
//! `reply.problem(status, code)?` for a problem+json one; a failure names
//! the status (or code), where it was expected, and the body.
//!
//! Nothing of our own stack is mocked here: PostgreSQL, PostgREST and the
//! functions' real wasm in workerd. Only third parties this machine cannot
//! reach get local stand-ins, added by the cases that need them.
//!
//! After the last case, [`leaks`] searches every answer the cases read and
//! workerd's whole log for the stack's secrets and the tokens the cases
//! sent; a hit fails the run even when every case passed.

use anyhow::{anyhow, bail, Context as _};
use edge_stack::{Stack, StackOptions};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub mod leaks;

/// Everything a case can use.
pub struct World {
    pub stack: Stack,
    pub http: reqwest::Client,
    pub openapi: OpenApi,
}

impl World {
    /// The base URL of a function served by workerd.
    pub fn function(&self, name: &str) -> &str {
        self.stack.function_url(name)
    }

    /// A `POST` to `function`'s `path` (`/tickets`), built up with
    /// [`Call::json`], [`Call::bearer`] and [`Call::header`], then
    /// [`Call::send`]: the one way cases post to a function.
    pub fn post(&self, function: &str, path: &str) -> Call {
        let url = format!("{}{path}", self.function(function));
        Call {
            request: self.http.post(&url),
            url,
        }
    }
}

/// A request to a function being built; see [`World::post`].
pub struct Call {
    url: String,
    request: reqwest::RequestBuilder,
}

impl Call {
    /// `body` as JSON (`content-type: application/json`).
    pub fn json(mut self, body: &Value) -> Self {
        self.request = self.request.json(body);
        self
    }

    /// `body` as it is, for bytes that must arrive exactly as signed.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.request = self.request.body(body.into());
        self
    }

    /// `authorization: Bearer <token>`.
    pub fn bearer(mut self, token: &str) -> Self {
        self.request = self.request.bearer_auth(token);
        self
    }

    /// `authorization: Bearer <token>` when there is one.
    pub fn bearer_if(self, token: Option<&str>) -> Self {
        match token {
            Some(token) => self.bearer(token),
            None => self,
        }
    }

    /// Any other header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request = self.request.header(name, value);
        self
    }

    /// Sends it and reads the whole answer.
    pub async fn send(self) -> anyhow::Result<Reply> {
        let response = self
            .request
            .send()
            .await
            .with_context(|| format!("POST {}", self.url))?;
        Reply::read(response).await
    }
}

pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>>;
pub type Case = for<'a> fn(&'a World) -> CaseFuture<'a>;

/// Starts the stack, runs `cases` (name, function) against it, stops the
/// stack, and exits with the harness's verdict.
pub fn run(options: StackOptions, cases: Vec<(&'static str, Case)>) -> ! {
    let args = libtest_mimic::Arguments::from_args();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => fail_all(&args, &cases, &format!("tokio runtime: {e}")),
    };
    let world = match runtime.block_on(start(options)) {
        Ok(world) => Arc::new(world),
        Err(e) => fail_all(&args, &cases, &format!("the stack did not start: {e:#}")),
    };
    let handle = runtime.handle().clone();
    let trials = cases
        .into_iter()
        .map(|(name, case)| {
            let world = Arc::clone(&world);
            let handle = handle.clone();
            libtest_mimic::Trial::test(name, move || {
                handle
                    .block_on(case(&world))
                    .map_err(|e| format!("{e:#}").into())
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    let leaked = !args.list && !no_secrets_leaked(&world);
    // Stop every server before exiting: `exit` skips destructors.
    drop(world);
    drop(runtime);
    if leaked {
        // libtest's own exit code for a failed run.
        std::process::exit(101);
    }
    conclusion.exit()
}

/// The check after all cases (see [`leaks`]): reports on stderr and says
/// whether it passed.
fn no_secrets_leaked(world: &World) -> bool {
    let verdict = secrets_seen(world).and_then(|secrets| {
        let log_path = world.stack.dir().join("workerd.log");
        let log =
            std::fs::read(&log_path).with_context(|| format!("read {}", log_path.display()))?;
        leaks::check(secrets, &log)
    });
    match verdict {
        Ok(v) if v.leaks.is_empty() => {
            eprintln!(
                "secrets never leak: ok ({} values searched for in {} answers and {} workerd log lines)",
                v.secrets, v.answers, v.log_lines
            );
            true
        }
        Ok(v) => {
            eprintln!(
                "secrets never leak: FAILED, {} found ({} values searched for in {} answers and {} workerd log lines):",
                v.leaks.len(),
                v.secrets,
                v.answers,
                v.log_lines
            );
            for leak in &v.leaks {
                eprintln!("    {leak}");
            }
            false
        }
        Err(e) => {
            eprintln!("secrets never leak: FAILED, the check could not run: {e:#}");
            false
        }
    }
}

/// Every secret the stack configured, every token minted in this process,
/// and every captcha token the captcha stand-in was shown.
fn secrets_seen(world: &World) -> anyhow::Result<Vec<leaks::Secret>> {
    let mut secrets: Vec<leaks::Secret> = world
        .stack
        .secrets()
        .iter()
        .map(|(name, value)| leaks::Secret::new(name.clone(), value.clone()))
        .collect();
    if secrets.is_empty() {
        bail!("the stack reports no configured secrets: nothing would be checked");
    }
    secrets.extend(
        edge_stack::tokens::minted()
            .into_iter()
            .map(|token| leaks::Secret::new("a user token the stack minted", token)),
    );
    let captcha_tokens = world
        .stack
        .captcha()
        .map(|stub| stub.requests())
        .unwrap_or_default();
    secrets.extend(captcha_tokens.iter().filter_map(|request| {
        let token = request["response"].as_str()?;
        // Placeholders like "x" are no credential and would match by chance.
        (token.len() >= 16).then(|| leaks::Secret::new("a captcha token", token))
    }));
    Ok(secrets)
}

async fn start(options: StackOptions) -> anyhow::Result<World> {
    let stack = Stack::start(options).await?;
    Ok(World {
        stack,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
        openapi: OpenApi::load()?,
    })
}

/// Reports every case as failed with the same reason (the stack is down).
fn fail_all(args: &libtest_mimic::Arguments, cases: &[(&'static str, Case)], why: &str) -> ! {
    let trials = cases
        .iter()
        .map(|(name, _)| {
            let why = why.to_owned();
            libtest_mimic::Trial::test(*name, move || Err(why.into()))
        })
        .collect();
    libtest_mimic::run(args, trials).exit()
}

/// A response read whole, for assertions.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// Reads the whole answer, and keeps a copy for the secrets check at
    /// the end of the run ([`leaks`]).
    pub async fn read(response: reqwest::Response) -> anyhow::Result<Self> {
        let url = response.url().clone();
        let reply = Self {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.bytes().await?.to_vec(),
        };
        leaks::record(&url, reply.status, &reply.headers, &reply.body);
        Ok(reply)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "body is not JSON (status {}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The media type without parameters.
    pub fn media_type(&self) -> &str {
        self.header("content-type")
            .and_then(|v| v.split(';').next())
            .unwrap_or("")
            .trim()
    }

    /// The body as text, for messages.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// This reply, when its status is `status`; else an error naming the
    /// status it has, the one expected, where, and the body. A case that
    /// expects several adds what each is: `reply.expect(201).context("first")?`.
    #[track_caller]
    pub fn expect(&self, status: u16) -> anyhow::Result<&Self> {
        if self.status != status {
            bail!(
                "status {}, expected {status} (at {}), body: {}",
                self.status,
                std::panic::Location::caller(),
                self.text()
            );
        }
        Ok(self)
    }

    /// This reply, when it is what openapi.yaml documents for `method
    /// path` (see [`OpenApi::check`]): `reply.expect(201)?.documented(..)?`.
    pub fn documented(&self, openapi: &OpenApi, method: &str, path: &str) -> anyhow::Result<&Self> {
        openapi.check(method, path, self)?;
        Ok(self)
    }

    /// The problem document of a reply with status `status` whose `code`
    /// names the problem `code` (`"not_found"`), for the checks a case
    /// adds; the error names what it got, where, and the body.
    #[track_caller]
    pub fn problem(&self, status: u16, code: &str) -> anyhow::Result<Value> {
        self.expect(status)?;
        let problem = self.json()?;
        if problem["code"] != code {
            bail!(
                "problem code {}, expected {code:?} (at {}), body: {}",
                problem["code"],
                std::panic::Location::caller(),
                self.text()
            );
        }
        Ok(problem)
    }

    /// The problem document's `detail` (empty when it has none).
    pub fn detail(&self) -> anyhow::Result<String> {
        Ok(self.json()?["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// The fields a 422 problem's `errors` name, in its order.
    pub fn fields(&self) -> anyhow::Result<Vec<String>> {
        let problem = self.json()?;
        let errors = problem["errors"]
            .as_array()
            .with_context(|| format!("no errors[] in the problem: {problem}"))?;
        Ok(errors
            .iter()
            .filter_map(|e| e["field"].as_str().map(str::to_owned))
            .collect())
    }
}

/// The project's `openapi.yaml`, used to check real responses against what
/// is documented.
pub struct OpenApi {
    doc: Value,
}

impl OpenApi {
    pub fn load() -> anyhow::Result<Self> {
        let path = edge_stack::repo_root().join("openapi.yaml");
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let doc: Value = serde_yaml_ng::from_str(&text).context("parse openapi.yaml")?;
        Ok(Self { doc })
    }

    /// Checks that `reply` is a documented answer of `method path`: its
    /// status is listed, its media type is listed for that status, and its
    /// body validates against that schema (with `$ref`s resolved in the
    /// whole document).
    pub fn check(&self, method: &str, path: &str, reply: &Reply) -> anyhow::Result<()> {
        let item = self.follow(format!("/paths/{}", escape(path)))?;
        let op = self.follow(format!("{item}/{}", method.to_ascii_lowercase()))?;
        let status = reply.status.to_string();
        let response = self
            .follow(format!("{op}/responses/{status}"))
            .or_else(|_| self.follow(format!("{op}/responses/default")))
            .map_err(|_| anyhow!("{method} {path}: status {status} is not documented"))?;
        let media = reply.media_type();
        if self.at(&format!("{response}/content")).is_none() {
            if reply.body.is_empty() {
                return Ok(());
            }
            bail!("{method} {path} {status}: documented without a body, got {media}");
        }
        let schema = self
            .follow(format!("{response}/content/{}/schema", escape(media)))
            .map_err(|_| {
                anyhow!("{method} {path} {status}: media type {media:?} is not documented")
            })?;
        self.validate(&schema, &reply.json()?)
            .with_context(|| format!("{method} {path} {status}: body does not match openapi.yaml"))
    }

    /// Checks a value against `components/schemas/<name>`, for answers of
    /// paths that are deliberately not documented (an unknown route's 404).
    pub fn check_schema(&self, name: &str, value: &Value) -> anyhow::Result<()> {
        self.validate(&format!("/components/schemas/{name}"), value)
            .with_context(|| format!("does not match schema {name}"))
    }

    fn validate(&self, schema: &str, body: &Value) -> anyhow::Result<()> {
        let mut root = self.doc.clone();
        root["$ref"] = Value::String(format!("#{schema}"));
        let validator = jsonschema::validator_for(&root)
            .map_err(|e| anyhow!("openapi.yaml schema at {schema} is invalid: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            bail!("{}\nbody: {body}", errors.join("\n  "))
        }
    }

    fn at(&self, pointer: &str) -> Option<&Value> {
        self.doc.pointer(pointer)
    }

    /// The JSON pointer of the object at `pointer`, following a `$ref` it
    /// may consist of.
    fn follow(&self, mut pointer: String) -> anyhow::Result<String> {
        for _ in 0..8 {
            let value = self
                .at(&pointer)
                .ok_or_else(|| anyhow!("openapi.yaml has nothing at {pointer}"))?;
            match value.get("$ref").and_then(Value::as_str) {
                Some(target) => {
                    pointer = target
                        .strip_prefix('#')
                        .ok_or_else(|| anyhow!("only local $refs are supported: {target}"))?
                        .to_owned();
                }
                None => return Ok(pointer),
            }
        }
        bail!("$ref chain too long at {pointer}")
    }
}

/// JSON-pointer escaping of one reference token (RFC 6901).
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Asserts a condition inside a case with a message, returning an error
/// rather than panicking so the harness reports it cleanly.
#[macro_export]
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(,)?) => {
        $crate::ensure_eq!($left, $right, "{}", stringify!($left))
    };
    ($left:expr, $right:expr, $($msg:tt)+) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            anyhow::bail!("{}: {:?} != {:?}", format!($($msg)+), left, right);
        }
    }};
}

/// A marker unique to one case (`{what}-{32 hex digits}`), so its rows,
/// subjects, event ids and captcha tokens are its own while cases run in
/// parallel; the stand-ins read the `what` part (`[lost]`, `pass...`).
pub fn unique(what: &str) -> String {
    format!("{what}-{}", uuid::Uuid::new_v4().simple())
}

/// The intakes' rate limits count in fixed windows of `window`, aligned to
/// the epoch (`kit.intake_window`). When less than `needed` is left of the
/// current one, waits for the next to begin (and a second more), so what
/// follows falls in one window if it takes at most `needed`. Waits only
/// then, and never more than `needed` and a second.
pub async fn inside_one_window(window: Duration, needed: Duration) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let left = left_of_window(now, window);
    if left < needed {
        tokio::time::sleep(left + Duration::from_secs(1)).await;
    }
}

/// What is left, at `now` since the epoch, of its window of `window`.
fn left_of_window(now: Duration, window: Duration) -> Duration {
    let into = now.as_millis() % window.as_millis().max(1);
    window.saturating_sub(Duration::from_millis(
        u64::try_from(into).unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_to_the_epoch() {
        let (minute, hour) = (Duration::from_secs(60), Duration::from_secs(3600));
        // 14:00:00 and 13:59:30 on some day.
        let day = Duration::from_secs(20_000 * 86_400);
        let fourteen = day + Duration::from_secs(14 * 3600);
        assert_eq!(left_of_window(fourteen, hour), hour);
        assert_eq!(
            left_of_window(fourteen - Duration::from_secs(30), hour),
            Duration::from_secs(30)
        );
        assert_eq!(
            left_of_window(fourteen + Duration::from_millis(50_500), minute),
            Duration::from_millis(9_500)
        );
    }
}
