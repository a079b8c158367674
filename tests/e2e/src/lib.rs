//! Support for the end-to-end tests: the shared [`World`] (a running stack,
//! an HTTP client, the OpenAPI document) and a small harness that runs async
//! cases against it with `libtest-mimic`, so `cargo test -p edge-e2e -- name`
//! filters and reports like any test binary.
//!
//! Nothing of our own stack is mocked here: PostgreSQL, PostgREST and the
//! functions' real wasm in workerd. Only third parties this machine cannot
//! reach get local stand-ins, added by the cases that need them.

use anyhow::{anyhow, bail, Context as _};
use edge_stack::{Stack, StackOptions};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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
    // Stop every server before exiting: `exit` skips destructors.
    drop(world);
    drop(runtime);
    conclusion.exit()
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
    pub async fn read(response: reqwest::Response) -> anyhow::Result<Self> {
        Ok(Self {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.bytes().await?.to_vec(),
        })
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
