//! `stack bench` (run by `scripts/bench`): how fast each route is, measured
//! on the real stack against the floor it cannot beat.
//!
//! One stack (PostgreSQL, PostgREST, every function's wasm in one workerd,
//! the stand-ins) on ephemeral ports; wrk (`bench/wrk/replay.lua`) drives
//! each route at 1, 8 and 32 connections, user routes with HS256 and ES256
//! tokens. The floor of a route is measured in the same run, right after
//! it: the very PostgREST requests the route makes, captured through a
//! counted variant of its function ([`crate::counter`]) and sent straight to
//! PostgREST with the same JWT, and the stand-in third party alone. A
//! route's steps happen one after another, so the floor's latency is the sum
//! of its steps' and its requests/s `1 / Σ (1 / rps)`. For `GET /health`,
//! which does no I/O, the floor is a plain JavaScript Worker in the same
//! workerd: workerd's own cost.
//!
//! Each run also records the CPU the servers spent over the requests served
//! (workerd's is the function's cost). Besides: wasm sizes, each script's
//! start-up in a workerd of its own, and how many PostgREST requests each
//! route makes.
//!
//! Left out on purpose: pass/fail thresholds. Timings move with the
//! machine's load, so the smoke mode CI runs only proves the harness works:
//! every request answered 2xx, every figure present.

mod report;
mod wrk;

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, ensure, Context as _};
use edge_billing::{event::Provider, signature};
use serde_json::{json, Value};

pub use report::Report;
pub use wrk::{CpuPerRequest, Measured};

use crate::{stubs, DemoUser, Stack, StackOptions};
use wrk::PlanLine;

/// The seeded attachment (`hello.txt`) the member may see: `/attachments/sign`
/// is read-only, so every request can ask for it.
const SEEDED_ATTACHMENT: &str = "dddddddd-dddd-4ddd-8ddd-dddddddddddd";
/// The Stripe delivery every webhook request sends, with its own event id:
/// a subscription of the seeded account, so each one is applied.
const STRIPE_FIXTURE: &str = "crates/billing/fixtures/stripe/customer.subscription.updated.json";
/// Requests per route sent through its counted variant before measuring.
const PROBES: usize = 3;
/// The JavaScript Worker that is `GET /health`'s floor.
const JS_WORKER: &str = "floor-js";
/// The functions, each also served counted as `<name>-counted`.
const FUNCTIONS: [&str; 4] = [
    "attachment-urls",
    "billing-webhook",
    "send-email",
    "ticket-intake",
];

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The repository (builds, `bench/`, fixtures).
    pub root: PathBuf,
    /// One short run per route at one connection: proves the harness works.
    pub smoke: bool,
    /// Length of each measured run.
    pub duration: Duration,
    /// Length of each route's warm-up (at 8 connections, not recorded).
    pub warmup: Duration,
    /// Connection counts, each a run per route and per floor step.
    pub connections: Vec<u32>,
    /// Start-ups measured per script (the median is reported).
    pub startup_samples: usize,
    /// Where `<name>.json` and `<name>.md` go.
    pub out: PathBuf,
    /// The results' file name, without extension.
    pub name: String,
    /// A sentence for the report (e.g. the machine's other load).
    pub note: Option<String>,
    /// Only the routes whose `METHOD /path` contains this (while working
    /// on one route); every route when `None`.
    pub only: Option<String>,
}

impl Options {
    /// The full run: about five seconds per run, 1, 8 and 32 connections,
    /// results in `bench/results/<date>-<cores>core`.
    pub fn full(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            smoke: false,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(2),
            connections: vec![1, 8, 32],
            startup_samples: 5,
            out: root.join("bench/results"),
            name: format!("{}-{}core", chrono::Utc::now().format("%Y-%m-%d"), cores()),
            note: None,
            only: None,
        }
    }

    /// The smoke run CI does: a second per run at one connection, results
    /// in `target/bench-smoke/smoke`.
    pub fn smoke(root: &Path) -> Self {
        Self {
            smoke: true,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            connections: vec![1],
            startup_samples: 1,
            out: root.join("target/bench-smoke"),
            name: "smoke".to_owned(),
            ..Self::full(root)
        }
    }
}

/// The stack the benchmark runs on: every function, a counted variant of
/// each, and the JavaScript floor worker.
pub fn stack_options(root: &Path) -> StackOptions {
    let mut opts = StackOptions {
        root: root.to_owned(),
        ..StackOptions::ephemeral()
    }
    .functions(FUNCTIONS)
    .js_worker(JS_WORKER, root.join("bench/floor-worker.js"));
    for function in FUNCTIONS {
        opts = opts.counted(&counted(function), function);
    }
    opts
}

fn counted(function: &str) -> String {
    format!("{function}-counted")
}

/// Runs the benchmark, writes `<out>/<name>.json` and `.md`, and returns
/// the report. Fails when any request of a run was answered with an error
/// (the harness would be measuring the wrong thing), never on a timing.
pub async fn run(opts: Options) -> anyhow::Result<Report> {
    let wrk_version = wrk::version().await?;
    let mut report = Report::begin(&opts, wrk_version)?;
    eprintln!("bench: starting the stack");
    let stack = Stack::start(stack_options(&opts.root)).await?;
    eprintln!("bench: stack in {}", stack.dir().display());
    let mut bench = Bench::new(&stack, &opts)?;
    bench.prepare_database().await?;

    report.wasm = report::wasm_sizes(&opts.root, &FUNCTIONS)?;
    report.startup = bench.startup(&opts).await?;

    let routes = bench.routes(opts.only.as_deref()).await?;
    for route in &routes {
        report.routes.push(bench.measure(route).await?);
    }
    report.floors = bench.floor_reports();
    report.finish();

    fs::create_dir_all(&opts.out).with_context(|| format!("create {}", opts.out.display()))?;
    let json_path = opts.out.join(format!("{}.json", opts.name));
    let md_path = opts.out.join(format!("{}.md", opts.name));
    fs::write(&json_path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("write {}", json_path.display()))?;
    report.plots = plot(&opts.root, &json_path).await;
    fs::write(&md_path, report.markdown())
        .with_context(|| format!("write {}", md_path.display()))?;
    eprintln!(
        "bench: wrote {} and {}",
        json_path.display(),
        md_path.display()
    );
    report.check()?;
    Ok(report)
}

/// `bench/plot.py` on the results: the PNGs it wrote, by file name. A plot
/// that cannot be made (no Python, no matplotlib) is reported, not fatal.
async fn plot(root: &Path, json: &Path) -> Vec<String> {
    let out = tokio::process::Command::new("python3")
        .arg(root.join("bench/plot.py"))
        .arg(json)
        .stderr(std::process::Stdio::inherit())
        .output()
        .await;
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| Path::new(line.trim()).file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .collect(),
        Ok(out) => {
            eprintln!("bench: bench/plot.py failed ({}); no plots", out.status);
            Vec::new()
        }
        Err(e) => {
            eprintln!("bench: cannot run python3 for bench/plot.py ({e}); no plots");
            Vec::new()
        }
    }
}

/// The host's cores, for the results' name.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A route as measured.
struct Route {
    /// `POST /attachments/sign`.
    route: &'static str,
    /// The user token's algorithm, for user routes.
    token: Option<&'static str>,
    function: &'static str,
    /// What wrk sends the function.
    requests: Requests,
    /// The floor's steps, in the order the route takes them.
    floor: Vec<Step>,
    /// PostgREST requests per route request, as counted.
    postgrest_requests: f64,
    /// Each one's method and path (without the query).
    postgrest_calls: Vec<String>,
    /// What one probe answered, for the report.
    probe_answer: String,
}

enum Requests {
    /// The same plan for every run.
    Plan(Vec<PlanLine>),
    /// Stripe deliveries, each with its own event id and signed with the
    /// time of the run: generated per run.
    Stripe(Value),
}

/// One part of a route's floor, run on its own.
#[derive(Clone)]
struct Step {
    /// Identity: steps with the same key are the same requests (the
    /// service's part of `/emails` with either token), measured once.
    key: String,
    /// `PostgREST POST /rpc/reserve_email as the user (HS256)`.
    label: String,
    /// `postgrest`, `third party` or `worker`.
    kind: &'static str,
    url: String,
    plan: Vec<PlanLine>,
    /// Collect a value of each answer into a pool: (Lua pattern, pool).
    collect: Option<(&'static str, &'static str)>,
    /// Take `{{id}}` values from this pool (filled by an earlier step at
    /// the same connection count). Such a step stops when they are used up.
    ids: Option<&'static str>,
}

/// How a captured PostgREST request becomes a floor step: the values that
/// must differ per request for PostgreSQL to do the route's work (a reused
/// idempotency key would be a cheap replay, a reused captcha hash a 409).
struct FloorRule {
    path: &'static str,
    /// JSON pointers into the body, and what replaces their (string) value.
    unique: &'static [(&'static str, &'static str)],
    collect: Option<(&'static str, &'static str)>,
    ids: Option<&'static str>,
}

const FLOOR_RULES: &[FloorRule] = &[
    FloorRule {
        path: "/rpc/reserve_email",
        unique: &[("/p_idempotency_key", "{{n}}")],
        collect: Some((r#""mail_id"%s*:%s*"([%x-]+)""#, "mail_id")),
        ids: None,
    },
    FloorRule {
        path: "/rpc/finalize_email",
        unique: &[("/p_mail_id", "{{id}}")],
        collect: None,
        ids: Some("mail_id"),
    },
    FloorRule {
        path: "/rpc/intake_begin",
        unique: &[("/p_client_ip", "{{ip}}")],
        collect: None,
        ids: None,
    },
    FloorRule {
        path: "/rpc/intake_submit",
        unique: &[
            ("/p_client_ip", "{{ip}}"),
            ("/p_captcha_token_hash", "{{hex}}"),
        ],
        collect: None,
        ids: None,
    },
    FloorRule {
        path: "/rpc/apply_billing_event",
        unique: &[("/p_event/event_id", "{{n}}")],
        collect: None,
        ids: None,
    },
];

struct Bench<'a> {
    stack: &'a Stack,
    root: PathBuf,
    /// Plans, summaries and pools, in the stack's directory.
    dir: PathBuf,
    http: reqwest::Client,
    servers: wrk::Servers,
    duration: Duration,
    warmup: Duration,
    connections: Vec<u32>,
    /// Runs so far: names files and makes `{{n}}` unique.
    runs: usize,
    /// When the benchmark started (Unix seconds), for [`Bench::tag`].
    started: i64,
    /// The Stripe route's last requests/s, to size the next run's
    /// deliveries; a guess above this machine's rate before the first.
    stripe_rate: f64,
    /// Floor steps measured so far: key -> (step, connections -> figures).
    steps: BTreeMap<String, (Step, BTreeMap<u32, Measured>)>,
    /// Collected values: (pool, connections) -> file.
    pools: HashMap<(&'static str, u32), PathBuf>,
}

impl<'a> Bench<'a> {
    fn new(stack: &'a Stack, opts: &Options) -> anyhow::Result<Self> {
        let pid = |name: &str| {
            stack
                .pids()
                .into_iter()
                .find(|(n, _)| *n == name)
                .map(|(_, pid)| pid)
                .with_context(|| format!("{name} is not running"))
        };
        let dir = stack.dir().join("bench");
        fs::create_dir_all(&dir)?;
        Ok(Self {
            stack,
            root: opts.root.clone(),
            dir,
            http: reqwest::Client::new(),
            servers: wrk::Servers {
                workerd: pid("workerd")?,
                postgrest: pid("postgrest")?,
                postgres: pid("postgres")?,
            },
            duration: opts.duration,
            warmup: opts.warmup,
            connections: opts.connections.clone(),
            runs: 0,
            started: chrono::Utc::now().timestamp(),
            stripe_rate: 1000.0,
            steps: BTreeMap::new(),
            pools: HashMap::new(),
        })
    }

    /// Limits out of the way: the intake's rate limits raised (each request
    /// comes from its own address anyway), and the member given credits for
    /// every email the run sends, allowed plain mails (send-email's default
    /// is templates only) and no daily limit in the way.
    async fn prepare_database(&self) -> anyhow::Result<()> {
        self.stack
            .psql(&format!(
                "update public.ticket_intakes set rate_limit_per_ip = 1000000000, \
                 rate_limit_per_account = 1000000000 where intake_key = 'acme'; \
                 insert into public.email_sender_settings \
                   (user_id, custom_content_allowed, daily_mail_limit, daily_recipient_limit) \
                 values ('{member}', true, 1000000000, 1000000000) \
                 on conflict (user_id) do update set custom_content_allowed = true, \
                   daily_mail_limit = 1000000000, daily_recipient_limit = 1000000000; \
                 select public.grant_credits('{member}', 1000000000, 'manual_adjustment', 'bench');",
                member = DemoUser::Member.id()
            ))
            .await?;
        Ok(())
    }

    /// Each function's start-up in a workerd of its own, and the plain
    /// JavaScript worker's (workerd's own part).
    async fn startup(&self, opts: &Options) -> anyhow::Result<report::Startup> {
        eprintln!("bench: start-up times");
        let samples = opts.startup_samples.max(1);
        let measure = |name: &'static str| async move {
            let mut ms = Vec::with_capacity(samples);
            for _ in 0..samples {
                ms.push(self.stack.startup_time(name).await?.as_secs_f64() * 1000.0);
            }
            anyhow::Ok(report::StartupTime::new(name, ms))
        };
        let js_worker = measure(JS_WORKER).await?;
        let mut functions = Vec::new();
        for function in FUNCTIONS {
            functions.push(measure(function).await?);
        }
        Ok(report::Startup {
            samples,
            js_worker,
            functions,
        })
    }

    /// Every route (or those matching `only`), probed.
    async fn routes(&mut self, only: Option<&str>) -> anyhow::Result<Vec<Route>> {
        let wanted = |route: &str| only.is_none_or(|only| route.contains(only));
        let mut routes = Vec::new();
        if wanted("GET /health") {
            routes.push(self.health().await?);
        }
        for alg in ["HS256", "ES256"] {
            if wanted("POST /attachments/sign") {
                routes.push(self.sign(alg).await?);
            }
        }
        for alg in ["HS256", "ES256"] {
            if wanted("POST /emails") {
                routes.push(self.emails(alg).await?);
            }
        }
        if wanted("POST /tickets") {
            routes.push(self.tickets().await?);
        }
        if wanted("POST /webhooks/stripe") {
            routes.push(self.stripe().await?);
        }
        if routes.is_empty() {
            bail!("no route matches {:?}", only.unwrap_or_default());
        }
        Ok(routes)
    }

    fn token(&self, alg: &str) -> anyhow::Result<String> {
        match alg {
            "HS256" => Ok(self.stack.user_token(DemoUser::Member)),
            "ES256" => self.stack.user_token_es256(DemoUser::Member),
            other => bail!("no {other} tokens"),
        }
    }

    async fn health(&mut self) -> anyhow::Result<Route> {
        let line = PlanLine::new("GET", "/health");
        let mut route = self
            .probe("GET /health", None, "send-email", vec![line.clone()])
            .await?;
        route.floor.push(Step {
            key: "worker floor-js".to_owned(),
            label: "a plain JavaScript Worker in the same workerd".to_owned(),
            kind: "worker",
            url: self.stack.function_url(JS_WORKER).to_owned(),
            plan: vec![line],
            collect: None,
            ids: None,
        });
        Ok(route)
    }

    async fn sign(&mut self, alg: &'static str) -> anyhow::Result<Route> {
        let token = self.token(alg)?;
        let line = PlanLine::new("POST", "/attachments/sign")
            .header("authorization", &format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(json!({ "ids": [SEEDED_ATTACHMENT] }).to_string());
        self.probe(
            "POST /attachments/sign",
            Some(alg),
            "attachment-urls",
            vec![line],
        )
        .await
    }

    async fn emails(&mut self, alg: &'static str) -> anyhow::Result<Route> {
        let token = self.token(alg)?;
        // No Idempotency-Key: each request is a new send.
        let line = PlanLine::new("POST", "/emails")
            .header("authorization", &format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(
                json!({
                    "to": "ada@example.com",
                    "subject": "Hello",
                    "text": "Sent by scripts/bench.",
                })
                .to_string(),
            );
        let mut route = self
            .probe("POST /emails", Some(alg), "send-email", vec![line])
            .await?;
        let email = self.stack.email().context("the email stand-in")?;
        let sent = email
            .requests()
            .last()
            .cloned()
            .context("the email stand-in saw no request")?;
        // Between the two PostgREST calls, as the function does it.
        let at = route.floor.len().min(1);
        route.floor.insert(
            at,
            Step {
                key: "third party resend".to_owned(),
                label: "the email stand-in (Resend's POST /emails)".to_owned(),
                kind: "third party",
                url: email.url().to_owned(),
                plan: vec![PlanLine::new("POST", "/emails")
                    .header("authorization", &format!("Bearer {}", stubs::EMAIL_API_KEY))
                    .header("content-type", "application/json")
                    .header("idempotency-key", "{{n}}")
                    .body(sent["body"].to_string())],
                collect: None,
                ids: None,
            },
        );
        Ok(route)
    }

    async fn tickets(&mut self) -> anyhow::Result<Route> {
        // A new captcha token and client address per request: the stand-in
        // accepts a `pass...` token once, and a real form's load comes from
        // many addresses.
        let line = PlanLine::new("POST", "/tickets")
            .header("content-type", "application/json")
            .header("cf-connecting-ip", "{{ip}}")
            .body(
                json!({
                    "intake_key": "acme",
                    "title": "Printer on fire",
                    "content": "Sent by scripts/bench.",
                    "customer_email": "ada@example.com",
                    "captcha_token": "pass-{{n}}",
                })
                .to_string(),
            );
        let mut route = self
            .probe("POST /tickets", None, "ticket-intake", vec![line])
            .await?;
        let captcha = self.stack.captcha().context("the captcha stand-in")?;
        let verified = captcha
            .requests()
            .last()
            .cloned()
            .context("the captcha stand-in saw no request")?;
        let field = |name: &str| verified[name].as_str().unwrap_or_default().to_owned();
        let body = format!(
            "secret={}&response=pass-{{{{n}}}}&remoteip={{{{ip}}}}&idempotency_key={}",
            form_encode(&field("secret")),
            form_encode(&field("idempotency_key")),
        );
        // Between the two PostgREST calls, as the function does it.
        let at = route.floor.len().min(1);
        route.floor.insert(
            at,
            Step {
                key: "third party turnstile".to_owned(),
                label: "the captcha stand-in (Turnstile's siteverify)".to_owned(),
                kind: "third party",
                url: captcha.url().to_owned(),
                plan: vec![PlanLine::new("POST", "/turnstile/v0/siteverify")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)],
                collect: None,
                ids: None,
            },
        );
        Ok(route)
    }

    async fn stripe(&mut self) -> anyhow::Result<Route> {
        let path = self.root.join(STRIPE_FIXTURE);
        let template: Value = serde_json::from_slice(
            &fs::read(&path).with_context(|| format!("read {}", path.display()))?,
        )?;
        let probes = stripe_deliveries(&template, "probe", PROBES);
        let mut route = self
            .probe("POST /webhooks/stripe", None, "billing-webhook", probes)
            .await?;
        route.requests = Requests::Stripe(template);
        Ok(route)
    }

    /// Sends `lines` (one route request each, placeholders filled) through
    /// the function's counted variant, and turns the PostgREST requests
    /// they made into the route's floor steps.
    async fn probe(
        &mut self,
        name: &'static str,
        token: Option<&'static str>,
        function: &'static str,
        lines: Vec<PlanLine>,
    ) -> anyhow::Result<Route> {
        eprintln!("bench: probing {name}{}", suffix(token));
        let variant = counted(function);
        let counter = self
            .stack
            .postgrest_counter(&variant)
            .context("the counted variant")?;
        let url = self.stack.function_url(&variant).to_owned();
        let before = counter.count();
        let mut answer = String::new();
        let probes = if lines.len() == 1 {
            PROBES
        } else {
            lines.len()
        };
        for i in 0..probes {
            let line = fill_probe(&lines[i % lines.len()], i);
            let mut request = self.http.request(
                line.method.parse().context("method")?,
                format!("{url}{}", line.path),
            );
            for (k, v) in &line.headers {
                request = request.header(k, v);
            }
            let reply = request.body(line.body.clone()).send().await?;
            let status = reply.status().as_u16();
            let body = reply.text().await?;
            ensure!(
                (200..300).contains(&status),
                "{name}{} answered {status} to the bench's request: {body}",
                suffix(token)
            );
            answer = format!("{status} {}", truncate(&body, 160));
        }
        let captured = &counter.requests()[before..];
        let per_request = captured.len() as f64 / probes as f64;
        let first: Vec<&Value> = captured
            .iter()
            .take(captured.len() / probes.max(1))
            .collect();
        // The route's own token (a new mint would differ: ES256 signatures
        // are randomised), to tell its as-user requests from the service's.
        let user_token = token.and_then(|_| {
            lines[0]
                .headers
                .iter()
                .find(|(k, _)| k == "authorization")
                .and_then(|(_, v)| v.strip_prefix("Bearer "))
        });
        let mut floor = Vec::new();
        let mut calls = Vec::new();
        for request in first {
            let step = self.postgrest_step(request, token, user_token)?;
            calls.push(step.label.clone());
            floor.push(step);
        }
        let requests = Requests::Plan(lines);
        Ok(Route {
            route: name,
            token,
            function,
            requests,
            floor,
            postgrest_requests: per_request,
            postgrest_calls: calls,
            probe_answer: answer,
        })
    }

    /// A captured PostgREST request as a floor step: the same method, path,
    /// headers (the same JWT) and body, with [`FLOOR_RULES`]' unique values
    /// made placeholders.
    fn postgrest_step(
        &self,
        request: &Value,
        alg: Option<&'static str>,
        user_token: Option<&str>,
    ) -> anyhow::Result<Step> {
        let method = request["method"].as_str().unwrap_or_default();
        let path = request["path"].as_str().unwrap_or_default();
        let bare = path.split('?').next().unwrap_or_default();
        let mut body = request["body"].as_str().unwrap_or_default().to_owned();
        let rule = FLOOR_RULES.iter().find(|r| r.path == bare);
        if let Some(rule) = rule {
            let parsed: Value = serde_json::from_str(&body)
                .with_context(|| format!("{method} {bare}: the body is not JSON: {body}"))?;
            for (pointer, placeholder) in rule.unique {
                let value = parsed.pointer(pointer).with_context(|| {
                    format!(
                        "{method} {bare} no longer sends {pointer}: update FLOOR_RULES in \
                         crates/stack/src/bench/mod.rs to what it sends now: {body}"
                    )
                })?;
                let quoted = value.to_string();
                ensure!(
                    value.is_string() && body.contains(&quoted),
                    "{method} {bare}: {pointer} is not a string as written: {body}"
                );
                body = body.replace(&quoted, &format!("\"{placeholder}\""));
            }
        }
        let headers: Vec<(String, String)> = request["headers"]
            .as_object()
            .map(|h| {
                h.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let as_user = user_token.is_some_and(|token| {
            headers
                .iter()
                .any(|(k, v)| k == "authorization" && v == &format!("Bearer {token}"))
        });
        let who = if as_user {
            format!("as the user ({})", alg.unwrap_or_default())
        } else {
            "as the service".to_owned()
        };
        let key_alg = if as_user { alg.unwrap_or_default() } else { "" };
        Ok(Step {
            key: format!("postgrest {method} {bare} {key_alg}")
                .trim_end()
                .to_owned(),
            label: format!("PostgREST {method} {bare} {who}"),
            kind: "postgrest",
            url: self.stack.postgrest_url().to_owned(),
            plan: vec![PlanLine {
                method: method.to_owned(),
                path: path.to_owned(),
                headers,
                body,
            }],
            collect: rule.and_then(|r| r.collect),
            ids: rule.and_then(|r| r.ids),
        })
    }

    /// Warms the route up, then, at each connection count, runs it and each
    /// floor step not yet measured there.
    async fn measure(&mut self, route: &Route) -> anyhow::Result<report::RouteReport> {
        let url = self.stack.function_url(route.function).to_owned();
        if !self.warmup.is_zero() {
            eprintln!("bench: warming up {}{}", route.route, suffix(route.token));
            self.run_route(route, &url, 8, self.warmup, None).await?;
        }
        let mut runs = Vec::new();
        for connections in self.connections.clone() {
            let measured = self
                .run_route(route, &url, connections, self.duration, None)
                .await?;
            eprintln!(
                "bench: {:<24} {:<6} c={connections:<3} {}",
                route.route,
                route.token.unwrap_or(""),
                one_line(&measured)
            );
            let mut floor = Vec::new();
            for step in &route.floor {
                floor.push(self.run_step(step, connections).await?);
            }
            let worker_floor = route.floor.iter().any(|s| s.kind == "worker");
            runs.push(report::RouteRun::new(
                connections,
                measured,
                &floor,
                worker_floor,
            ));
        }
        Ok(report::RouteReport {
            route: route.route.to_owned(),
            token: route.token.map(str::to_owned),
            function: route.function.to_owned(),
            postgrest_requests: route.postgrest_requests,
            postgrest_calls: route.postgrest_calls.clone(),
            floor_steps: route.floor.iter().map(|s| s.label.clone()).collect(),
            probe_answer: route.probe_answer.clone(),
            runs,
        })
    }

    async fn run_route(
        &mut self,
        route: &Route,
        url: &str,
        connections: u32,
        duration: Duration,
        collect: Option<(String, PathBuf)>,
    ) -> anyhow::Result<Measured> {
        let plan = self.next_file("route", "plan");
        let lines = match &route.requests {
            Requests::Plan(lines) => lines.clone(),
            Requests::Stripe(template) => {
                // Twice what the last run's rate needs (each delivery is
                // some 7 KB): running out would send duplicates, a cheaper
                // path, counted in the report as `repeats`.
                let count =
                    (self.stripe_rate.max(100.0) * 2.0 * duration.as_secs_f64()).ceil() as usize;
                stripe_deliveries(template, &self.tag(), count + 200)
            }
        };
        wrk::write_plan(&plan, &lines)?;
        let job = wrk::Job {
            url: url.to_owned(),
            plan,
            connections,
            duration,
            tag: self.tag(),
            ids: None,
            collect,
        };
        let measured = wrk::run(&self.root, &job, self.servers).await?;
        if matches!(route.requests, Requests::Stripe(_)) {
            self.stripe_rate = measured.requests_per_sec;
            // Tens of megabytes, made anew for every run.
            let _ = fs::remove_file(&job.plan);
        }
        Ok(measured)
    }

    /// The step's figures at `connections`, measured now unless they were
    /// already (a step shared by two routes).
    async fn run_step(&mut self, step: &Step, connections: u32) -> anyhow::Result<Measured> {
        if let Some(done) = self
            .steps
            .get(&step.key)
            .and_then(|(_, runs)| runs.get(&connections))
        {
            return Ok(done.clone());
        }
        let plan = self.next_file("floor", "plan");
        wrk::write_plan(&plan, &step.plan)?;
        let ids = match step.ids {
            Some(pool) => Some(self.pools.get(&(pool, connections)).cloned().with_context(
                || {
                    format!(
                        "{}: no {pool} values collected at c={connections}",
                        step.label
                    )
                },
            )?),
            None => None,
        };
        let collected = self.next_file("collected", "txt");
        let job = wrk::Job {
            url: step.url.clone(),
            plan,
            connections,
            duration: self.duration,
            tag: self.tag(),
            ids,
            collect: step
                .collect
                .map(|(pattern, _)| (pattern.to_owned(), collected.clone())),
        };
        let measured = wrk::run(&self.root, &job, self.servers).await?;
        if let Some((_, pool)) = step.collect {
            // Appended: the same pool may be filled by two steps (the
            // service's part of /emails after each token's reservation).
            let path = self
                .pools
                .entry((pool, connections))
                .or_insert_with(|| self.dir.join(format!("pool-{pool}-{connections}.txt")))
                .clone();
            let values = fs::read_to_string(&collected).unwrap_or_default();
            let mut existing = fs::read_to_string(&path).unwrap_or_default();
            existing.push_str(&values);
            fs::write(&path, existing)?;
        }
        eprintln!(
            "bench:   floor {:<50} c={connections:<3} {}",
            step.label,
            one_line(&measured)
        );
        self.steps
            .entry(step.key.clone())
            .or_insert_with(|| (step.clone(), BTreeMap::new()))
            .1
            .insert(connections, measured.clone());
        Ok(measured)
    }

    /// Digits unique to this run of this process: `{{n}}` values (captcha
    /// tokens, idempotency keys) never meet one of an earlier run.
    fn tag(&self) -> String {
        format!("{}{:04}", self.started, self.runs)
    }

    fn next_file(&mut self, kind: &str, ext: &str) -> PathBuf {
        self.runs += 1;
        self.dir.join(format!("{:03}-{kind}.{ext}", self.runs))
    }

    fn floor_reports(&self) -> Vec<report::StepReport> {
        self.steps
            .values()
            .map(|(step, runs)| report::StepReport {
                key: step.key.clone(),
                label: step.label.clone(),
                kind: step.kind.to_owned(),
                runs: runs
                    .iter()
                    .map(|(c, m)| report::StepRun {
                        connections: *c,
                        measured: m.clone(),
                    })
                    .collect(),
            })
            .collect()
    }
}

/// `n` Stripe deliveries of `template`, each with its own event id
/// (`evt_bench_<tag>_<i>`, so each is applied, not a duplicate), signed now
/// with the stack's secret, as Stripe signs.
fn stripe_deliveries(template: &Value, tag: &str, n: usize) -> Vec<PlanLine> {
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or_default();
    (0..n)
        .map(|i| {
            let mut event = template.clone();
            event["id"] = json!(format!("evt_bench_{tag}_{i}"));
            let body = event.to_string();
            let header = signature::sign(
                Provider::Stripe,
                &crate::webhook_secret(Provider::Stripe),
                now,
                body.as_bytes(),
            );
            PlanLine::new("POST", "/webhooks/stripe")
                .header(signature::header_name(Provider::Stripe), &header)
                .header("content-type", "application/json")
                .body(body)
        })
        .collect()
}

/// A plan line with its placeholders filled for probe `i`.
fn fill_probe(line: &PlanLine, i: usize) -> PlanLine {
    let stamp = chrono::Utc::now().timestamp_micros();
    let fill = |s: &str| {
        s.replace("{{n}}", &format!("probe-{stamp}-{i}"))
            .replace("{{ip}}", &format!("10.255.255.{}", i + 1))
            .replace("{{hex}}", &format!("{stamp:048x}{i:016x}"))
    };
    PlanLine {
        method: line.method.clone(),
        path: fill(&line.path),
        headers: line
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), fill(v)))
            .collect(),
        body: fill(&line.body),
    }
}

/// `application/x-www-form-urlencoded` for one value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

fn suffix(token: Option<&str>) -> String {
    token.map(|t| format!(" ({t})")).unwrap_or_default()
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &s[..at]),
        None => s.to_owned(),
    }
}

fn one_line(m: &Measured) -> String {
    format!(
        "{:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  workerd {:>6.0} us/req  errors {}",
        m.requests_per_sec,
        m.p50_ms,
        m.p99_ms,
        m.cpu_us_per_request.workerd,
        m.error_responses + m.socket_errors
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(form_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
        assert_eq!(form_encode("stub-captcha-secret"), "stub-captcha-secret");
    }

    #[test]
    fn probes_fill_placeholders_with_their_own_values() {
        let line = PlanLine::new("POST", "/tickets")
            .header("cf-connecting-ip", "{{ip}}")
            .body(r#"{"captcha_token":"pass-{{n}}"}"#);
        let filled = fill_probe(&line, 1);
        assert_eq!(filled.headers[0].1, "10.255.255.2");
        assert!(filled.body.starts_with(r#"{"captcha_token":"pass-probe-"#));
        assert!(filled.body.ends_with(r#"-1"}"#));
    }

    #[test]
    fn stripe_deliveries_carry_distinct_ids_and_valid_signatures() {
        let template = json!({"id": "evt_x", "type": "customer.subscription.updated"});
        let lines = stripe_deliveries(&template, "t", 2);
        assert_eq!(lines.len(), 2);
        assert_ne!(lines[0].body, lines[1].body);
        for line in &lines {
            let header = &line.headers[0].1;
            let t: u64 = header
                .split(',')
                .find_map(|p| p.strip_prefix("t="))
                .and_then(|t| t.parse().ok())
                .expect("t=");
            assert_eq!(
                header,
                &signature::sign(
                    Provider::Stripe,
                    &crate::webhook_secret(Provider::Stripe),
                    t,
                    line.body.as_bytes()
                )
            );
        }
    }
}
