//! The whole local stack, without Docker: a throwaway PostgreSQL 15 cluster
//! loaded with `dev/bootstrap.sql`, the migrations and the seed; PostgREST 12
//! in front of it; and the built functions served by one `workerd`.
//!
//! Two callers shape it. Humans run the `stack` binary, which uses the fixed
//! dev ports Supabase's CLI uses (54321 PostgREST, 54322 Postgres, 8787+
//! functions). End-to-end tests call [`Stack::start`] with
//! [`StackOptions::ephemeral`], get free ports and their own temp directory,
//! and can run in parallel beside a developer's stack. Either way nothing
//! outlives the [`Stack`]: dropping it stops every process and deletes the
//! directory, and the kernel kills the servers if this process dies first.
//!
//! Left out on purpose: GoTrue, Storage and the API gateway. Tokens are minted
//! locally ([`tokens`]) with Supabase's demo secret and claim shapes, which is
//! all PostgREST and the functions look at.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use edge_stack::{DemoUser, Stack, StackOptions};
//!
//! let stack = Stack::start(StackOptions::ephemeral()).await?;
//! let url = format!("{}/health", stack.function_url("send-email"));
//! let token = stack.user_token(DemoUser::Owner);
//! # Ok(()) }
//! ```

pub mod bench;
pub mod contract;
pub mod counter;
mod net;
mod postgres;
mod postgrest;
mod process;
pub mod s3;
pub mod stubs;
pub mod tokens;
mod workerd;

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    process::ExitStatus,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

pub use tokens::{DemoUser, DEMO_JWT_SECRET};

use crate::{
    postgres::Postgres,
    process::Supervised,
    workerd::{Build, Function},
};

/// Dev port of PostgREST (Supabase CLI's API port).
pub const DEV_POSTGREST_PORT: u16 = 54321;
/// The secret local Storage tokens are signed with (attachment-urls'
/// `STORAGE_JWT_SECRET`); like the demo JWT secret, public and local only.
pub const STORAGE_JWT_SECRET: &str = "local-storage-secret-at-least-32-characters";

/// The webhook signing secret billing-webhook gets locally for `provider`
/// (one per provider, from its row in `edge_billing::providers`); tests
/// sign deliveries with it. Public and local only, like the demo JWT secret.
pub fn webhook_secret(provider: edge_billing::event::Provider) -> String {
    format!("local-{}-webhook-secret", provider.spec().slug)
}

/// send-email's webhook credentials: Resend's (Svix) signing secret, in its
/// `whsec_<base64>` form (the key is `local-resend-webhook-signing-key`),
/// and the basic auth set on Postmark's webhook. Public and local only.
pub const RESEND_WEBHOOK_SECRET: &str = "whsec_bG9jYWwtcmVzZW5kLXdlYmhvb2stc2lnbmluZy1rZXk=";
pub const POSTMARK_WEBHOOK_USER: &str = "postmark-webhook";
pub const POSTMARK_WEBHOOK_PASSWORD: &str = "local-postmark-webhook-password";

/// The bindings that hold secrets (the README's configuration table, kind
/// "secret"), besides each billing provider's: whatever else a function is
/// given is public. See [`is_secret_binding`].
pub const SECRET_BINDINGS: [&str; 8] = [
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_JWT_SECRET",
    "EMAIL_API_KEY",
    "STORAGE_JWT_SECRET",
    "S3_SECRET_ACCESS_KEY",
    "RESEND_WEBHOOK_SECRET",
    "POSTMARK_WEBHOOK_PASSWORD",
    "CAPTCHA_SECRET",
];

/// Whether a binding holds a secret: one of [`SECRET_BINDINGS`] or a
/// billing provider's signing secret.
pub fn is_secret_binding(name: &str) -> bool {
    SECRET_BINDINGS.contains(&name)
        || edge_billing::providers::PROVIDERS
            .iter()
            .any(|spec| spec.secret_var == name)
}

/// Dev port of PostgreSQL (Supabase CLI's database port).
pub const DEV_POSTGRES_PORT: u16 = 54322;
/// Dev port of the first function (wrangler's default); the rest follow in
/// alphabetical order of function name.
pub const DEV_FIRST_FUNCTION_PORT: u16 = 8787;

/// Where the servers listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortChoice {
    /// The fixed ports above, for humans and their bookmarks.
    Dev,
    /// Free ports picked by the OS, so tests can run beside anything else.
    Ephemeral,
}

/// How much of the stack to start; each level includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Services {
    /// PostgreSQL with the project's SQL loaded (enough for pgTAP).
    Postgres,
    /// PostgreSQL and PostgREST.
    Database,
    /// PostgreSQL, PostgREST and the built functions in workerd.
    All,
}

/// What [`Stack::start`] brings up, and how.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The repository: `dev/`, `migrations/`, `functions/`, `node_modules/`.
    pub root: PathBuf,
    /// Fixed dev ports or ephemeral ones.
    pub ports: PortChoice,
    /// How much to start.
    pub services: Services,
    /// Functions to serve, by directory name; `None` serves every function
    /// with a build (`functions/*/build/index.js`).
    pub functions: Option<Vec<String>>,
    /// Extra text bindings for every function, added after (and so
    /// overriding) the defaults: e.g. `CAPTCHA_VERIFY_URL` pointing at a stub.
    pub bindings: Vec<(String, String)>,
    /// Extra instances of a function's build under another name, with
    /// bindings of their own: e.g. `ticket-intake` pointed at a PostgREST
    /// that is down, served beside the real one.
    pub variants: Vec<Variant>,
    /// Plain JavaScript workers (name, one ES module) served beside the
    /// functions: e.g. the benchmark's floor for `GET /health`, what
    /// workerd itself costs per request.
    pub js_workers: Vec<(String, PathBuf)>,
    /// Cron triggers (name, function): a small worker served as `name`
    /// whose every request runs the function's `scheduled` handler, as a
    /// Cron Trigger would ([`StackOptions::cron_trigger`]).
    pub cron_triggers: Vec<(String, String)>,
    /// Start an S3-compatible server for the functions ([`s3`]).
    pub s3: bool,
    /// HS256 secret shared by PostgREST, the functions and the minted tokens.
    pub jwt_secret: String,
    /// Keep the temp directory (logs, cluster, workerd config) after the
    /// stack stops, for post-mortems. Defaults to whether `STACK_KEEP_DIR`
    /// is set to something other than `0`.
    pub keep_dir: bool,
}

impl StackOptions {
    /// Everything on the fixed dev ports, from [`repo_root`].
    pub fn dev() -> Self {
        Self {
            root: repo_root(),
            ports: PortChoice::Dev,
            services: Services::All,
            functions: None,
            bindings: Vec::new(),
            variants: Vec::new(),
            js_workers: Vec::new(),
            cron_triggers: Vec::new(),
            s3: false,
            jwt_secret: DEMO_JWT_SECRET.to_owned(),
            keep_dir: std::env::var_os("STACK_KEEP_DIR").is_some_and(|v| !v.is_empty() && v != "0"),
        }
    }

    /// Everything on ephemeral ports, from [`repo_root`]: what tests want.
    pub fn ephemeral() -> Self {
        Self {
            ports: PortChoice::Ephemeral,
            ..Self::dev()
        }
    }

    /// Starts only up to `services`.
    #[must_use]
    pub fn services(mut self, services: Services) -> Self {
        self.services = services;
        self
    }

    /// Serves only the named functions.
    #[must_use]
    pub fn functions<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.functions = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Adds (or overrides) a text binding for every function.
    #[must_use]
    pub fn binding(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.bindings.push((name.into(), value.into()));
        self
    }
}

/// A function's build served again under another name; see
/// [`StackOptions::variants`].
#[derive(Debug, Clone)]
pub struct Variant {
    /// The name it is served (and looked up) under.
    pub name: String,
    /// The function whose build it serves.
    pub function: String,
    /// Bindings added after (and so overriding) everyone's. In values,
    /// `{captcha}`, `{email}`, `{auth}` and `{storage}` stand for those
    /// stand-ins' base URLs, which are only known once they run (e.g.
    /// `{captcha}/hcaptcha/siteverify`), and `{refused}` for a local URL
    /// whose connections are refused ([`stubs::refused_url`]).
    pub bindings: Vec<(String, String)>,
    /// Whether its PostgREST requests go through a counting proxy of its
    /// own ([`StackOptions::counted`]).
    pub count_postgrest: bool,
}

impl StackOptions {
    /// Serves `function`'s build again as `name`, with `bindings` on top.
    #[must_use]
    pub fn variant(mut self, name: &str, function: &str, bindings: &[(&str, &str)]) -> Self {
        self.variants.push(Variant {
            name: name.to_owned(),
            function: function.to_owned(),
            bindings: bindings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            count_postgrest: false,
        });
        self
    }

    /// Also serves `source`, one plain JavaScript ES module, as `name`.
    #[must_use]
    pub fn js_worker(mut self, name: &str, source: impl Into<PathBuf>) -> Self {
        self.js_workers.push((name.to_owned(), source.into()));
        self
    }

    /// Also serves `name`, which fires `function`'s Cron Trigger (its
    /// `scheduled` handler) on every request and answers
    /// `{"outcome": ...}`: workerd's `Fetcher.scheduled()`, what Miniflare
    /// uses for `wrangler dev`'s `/cdn-cgi/handler/scheduled`.
    #[must_use]
    pub fn cron_trigger(mut self, name: &str, function: &str) -> Self {
        self.cron_triggers
            .push((name.to_owned(), function.to_owned()));
        self
    }
}

impl Default for StackOptions {
    fn default() -> Self {
        Self::ephemeral()
    }
}

/// The repository root: `$STACK_ROOT` if set, else two levels above this
/// crate's manifest (`crates/stack/../..`).
pub fn repo_root() -> PathBuf {
    let root = std::env::var_os("STACK_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    root.canonicalize().unwrap_or(root)
}

/// The pgTAP files `stack pgtap` runs: `tests/db/[0-9]*.sql`, sorted.
pub fn pgtap_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = root.join("tests/db");
    let mut files = Vec::new();
    if !dir.is_dir() {
        return Ok(files);
    }
    for entry in std::fs::read_dir(&dir).with_context(|| format!("list {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with(|c: char| c.is_ascii_digit()) && name.ends_with(".sql") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// How long one startup step took.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// What was waited for.
    pub step: &'static str,
    /// How long it took.
    pub took: Duration,
}

/// A running local stack. Dropping it stops every process (workerd, then
/// PostgREST, then PostgreSQL) and deletes its directory.
pub struct Stack {
    // Declared in stop order; `Drop` also stops them explicitly.
    workerd: Option<Supervised>,
    postgrest: Option<Supervised>,
    postgres: Postgres,
    captcha: Option<stubs::Stub>,
    email: Option<stubs::Stub>,
    auth: Option<stubs::Stub>,
    storage: Option<stubs::Stub>,
    /// Holds `{refused}`'s port (bound, never listening) while the stack runs.
    _refused: Option<tokio::net::TcpSocket>,
    s3: Option<s3::S3Server>,
    root: PathBuf,
    db_port: u16,
    db_url: String,
    postgrest_port: u16,
    postgrest_url: Option<String>,
    functions: BTreeMap<String, String>,
    secrets: Vec<(String, String)>,
    /// What workerd serves, as configured: for [`Stack::startup_time`].
    served: Vec<Function>,
    /// The counting proxies of counted variants, by variant name.
    counters: BTreeMap<String, counter::Counter>,
    jwt_secret: String,
    timings: Vec<Timing>,
    dir: PathBuf,
    /// Deletes the directory when dropped; `None` when kept.
    _tempdir: Option<tempfile::TempDir>,
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack")
            .field("db_url", &self.db_url)
            .field("postgrest_url", &self.postgrest_url)
            .field("functions", &self.functions)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Stack {
    /// Brings up the stack and returns once every server answers.
    ///
    /// On error, whatever had started is stopped again, and the message
    /// quotes the relevant log. Any thread and runtime will do: the stack
    /// may be started on one test's thread and shared with others.
    pub async fn start(opts: StackOptions) -> anyhow::Result<Stack> {
        // Ephemeral ports are found free, then bound by the servers a moment
        // later: another process (a second stack, a test's own listener) can
        // take one in between. Such a start is tried again on new ports.
        let mut attempt = 1;
        loop {
            match Self::start_once(opts.clone()).await {
                Err(e)
                    if attempt < 3
                        && opts.ports == PortChoice::Ephemeral
                        && format!("{e:#}").contains("Address already in use") =>
                {
                    attempt += 1;
                }
                started => return started,
            }
        }
    }

    async fn start_once(opts: StackOptions) -> anyhow::Result<Stack> {
        let mut watch = Stopwatch::new();
        let root = opts.root.canonicalize().unwrap_or(opts.root.clone());
        // Before anything starts, so a missing file fails fast.
        let sql = postgres::sql_files(&root)?;
        let tempdir = tempfile::Builder::new()
            .prefix("edge-stack-")
            .tempdir()
            .context("create the stack's temp dir")?;
        let dir = tempdir.path().to_owned();

        let names = if opts.services >= Services::All {
            function_names(&root, opts.functions.as_deref())?
        } else {
            Vec::new()
        };
        let served = opts.services >= Services::All;
        let variants: &[Variant] = if served { &opts.variants } else { &[] };
        let js_workers: &[(String, PathBuf)] = if served { &opts.js_workers } else { &[] };
        let cron_triggers: &[(String, String)] = if served { &opts.cron_triggers } else { &[] };
        for variant in variants {
            if !names.contains(&variant.function) {
                bail!(
                    "variant {:?} serves {:?}, which is not served",
                    variant.name,
                    variant.function
                );
            }
        }
        // Before the other ports are chosen, so none of them can be its.
        let s3 = if opts.s3 && !names.is_empty() {
            Some(s3::S3Server::start(&dir).await?)
        } else {
            None
        };
        let (db_port, postgrest_port, function_ports) = choose_ports(
            opts.ports,
            names.len() + variants.len() + js_workers.len() + cron_triggers.len(),
        )?;
        // Third parties the functions call, stood in for locally; their
        // settings go first so a caller's bindings can override them.
        let (captcha, email, auth, storage, refused) = if names.is_empty() {
            (None, None, None, None, None)
        } else {
            (
                Some(stubs::captcha(0).await?),
                Some(stubs::email(0).await?),
                Some(stubs::auth(0).await?),
                Some(stubs::storage(0).await?),
                Some(stubs::refused_url()?),
            )
        };
        let stub_bindings: Vec<(String, String)> = captcha
            .iter()
            .flat_map(|stub| {
                [
                    ("CAPTCHA_PROVIDER", "turnstile".to_owned()),
                    ("CAPTCHA_SECRET", stubs::CAPTCHA_SECRET.to_owned()),
                    (
                        "CAPTCHA_VERIFY_URL",
                        format!("{}{}", stub.url(), stubs::TURNSTILE_SITEVERIFY_PATH),
                    ),
                    (
                        "CAPTCHA_EXPECTED_HOSTNAME",
                        stubs::CAPTCHA_HOSTNAME.to_owned(),
                    ),
                ]
            })
            .chain(auth.iter().map(|stub| {
                (
                    "SUPABASE_JWKS_URL",
                    format!("{}/auth/v1/.well-known/jwks.json", stub.url()),
                )
            }))
            .chain(email.iter().flat_map(|stub| {
                [
                    ("EMAIL_PROVIDER", "resend".to_owned()),
                    ("EMAIL_API_KEY", stubs::EMAIL_API_KEY.to_owned()),
                    ("EMAIL_API_URL", stub.url().to_owned()),
                    (
                        "EMAIL_FROM",
                        "Acme Support <support@acme.example>".to_owned(),
                    ),
                ]
            }))
            .chain(s3.iter().flat_map(s3::S3Server::bindings))
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let db_url = format!(
            "postgresql://postgres:{}@127.0.0.1:{db_port}/postgres",
            postgres::POSTGRES_PASSWORD
        );
        let postgrest_url = format!("http://127.0.0.1:{postgrest_port}");

        let placeholders: Vec<(&str, String)> = [
            ("{captcha}", &captcha),
            ("{email}", &email),
            ("{auth}", &auth),
            ("{storage}", &storage),
        ]
        .into_iter()
        .filter_map(|(name, stub)| Some((name, stub.as_ref()?.url().to_owned())))
        .chain(refused.iter().map(|(url, _)| ("{refused}", url.clone())))
        .collect();
        let resolve = |(name, value): &(String, String)| {
            let value = placeholders
                .iter()
                .fold(value.clone(), |value, (from, to)| value.replace(from, to));
            (name.clone(), value)
        };
        // A counted variant's POSTGREST_URL is its own counting proxy.
        let mut counters = BTreeMap::new();
        let mut variant_bindings = Vec::with_capacity(variants.len());
        for variant in variants {
            let mut bindings: Vec<(String, String)> =
                variant.bindings.iter().map(resolve).collect();
            if variant.count_postgrest {
                let counter = counter::Counter::start(&postgrest_url).await?;
                bindings.push(("POSTGREST_URL".to_owned(), counter.url().to_owned()));
                counters.insert(variant.name.clone(), counter);
            }
            variant_bindings.push(bindings);
        }

        let mut function_ports = function_ports.into_iter();
        let mut functions: Vec<Function> = names
            .iter()
            .map(|name| (name, name, Vec::new()))
            .chain(
                variants
                    .iter()
                    .zip(variant_bindings)
                    .map(|(v, bindings)| (&v.name, &v.function, bindings)),
            )
            .zip(function_ports.by_ref())
            .map(|((name, build, extra), port)| Function {
                name: name.clone(),
                build: Build::Function(build.clone()),
                port,
                bindings: function_bindings(
                    &postgrest_url,
                    &opts.jwt_secret,
                    &[
                        build_bindings(build).as_slice(),
                        stub_bindings.as_slice(),
                        opts.bindings.as_slice(),
                        extra.as_slice(),
                    ]
                    .concat(),
                ),
            })
            .collect();
        for ((name, source), port) in js_workers.iter().zip(function_ports.by_ref()) {
            functions.push(Function {
                name: name.clone(),
                build: Build::Js(source.clone()),
                port,
                bindings: Vec::new(),
            });
        }
        for ((name, target), port) in cron_triggers.iter().zip(function_ports) {
            functions.push(Function {
                name: name.clone(),
                build: Build::Cron(target.clone()),
                port,
                bindings: Vec::new(),
            });
        }
        // workerd needs nothing from the database to load, so it starts now
        // and boots while Postgres does.
        let mut workerd = if functions.is_empty() {
            None
        } else {
            let config = workerd::write_config(&root, &dir, &functions)?;
            Some(workerd::spawn(&root, &dir, &config)?)
        };
        watch.lap("temp dir, ports, workerd config");

        let postgres = Postgres::start(&dir, db_port).await?;
        watch.lap("PostgreSQL initdb + start");

        postgres.apply(&sql, &root, &dir.join("sql.log")).await?;
        watch.lap("apply bootstrap, migrations, seed");

        let postgrest = if opts.services >= Services::Database {
            let process =
                postgrest::start(&root, &dir, db_port, postgrest_port, &opts.jwt_secret).await?;
            watch.lap("PostgREST ready");
            Some(process)
        } else {
            None
        };

        if let Some(process) = workerd.as_mut() {
            workerd::wait_ready(process, &functions).await?;
            watch.lap("workerd functions ready");
        }

        let tempdir = if opts.keep_dir {
            let _ = tempdir.keep();
            None
        } else {
            Some(tempdir)
        };
        Ok(Stack {
            workerd,
            postgrest_url: postgrest.as_ref().map(|_| postgrest_url),
            postgrest,
            postgres,
            captcha,
            email,
            auth,
            storage,
            _refused: refused.map(|(_, socket)| socket),
            s3,
            root,
            db_port,
            db_url,
            postgrest_port,
            functions: functions
                .iter()
                .map(|f| (f.name.clone(), format!("http://127.0.0.1:{}", f.port)))
                .collect(),
            secrets: configured_secrets(&functions),
            served: functions,
            counters,
            jwt_secret: opts.jwt_secret,
            timings: watch.timings,
            dir,
            _tempdir: tempdir,
        })
    }

    /// The captcha `siteverify` stand-in the functions are configured with
    /// (present when functions are served).
    pub fn captcha(&self) -> Option<&stubs::Stub> {
        self.captcha.as_ref()
    }

    /// The Supabase Auth stand-in serving the JWKS (present when functions
    /// are served).
    pub fn auth(&self) -> Option<&stubs::Stub> {
        self.auth.as_ref()
    }

    /// A user's access token signed with the stack's ES256 key (`kid`
    /// [`tokens::ES256_KID`]), as a project with asymmetric JWT signing keys
    /// issues them; PostgREST and the functions both accept it.
    pub fn user_token_es256(&self, user: DemoUser) -> anyhow::Result<String> {
        tokens::mint_es256(&tokens::user_claims(user, chrono::Utc::now()))
    }

    /// The same with the stack's RS256 key (`kid` [`tokens::RS256_KID`]).
    pub fn user_token_rs256(&self, user: DemoUser) -> anyhow::Result<String> {
        tokens::mint_rs256(&tokens::user_claims(user, chrono::Utc::now()))
    }

    /// Every secret the functions were configured with, as `(binding,
    /// value)`: the secret bindings ([`is_secret_binding`]) of every function and variant, each
    /// value once; comma-separated lists (webhook secrets while rotating)
    /// give one entry per secret. For checks that none of them ever shows
    /// up in a log or an answer.
    pub fn secrets(&self) -> &[(String, String)] {
        &self.secrets
    }

    /// The hosted Storage stand-in ([`stubs::storage`]); functions use it
    /// only where a variant points `STORAGE_URL` at `{storage}`.
    pub fn storage(&self) -> Option<&stubs::Stub> {
        self.storage.as_ref()
    }

    /// The email provider stand-in (Resend's API) the functions are
    /// configured with (present when functions are served).
    pub fn email(&self) -> Option<&stubs::Stub> {
        self.email.as_ref()
    }

    /// `postgresql://postgres:postgres@127.0.0.1:PORT/postgres`: the
    /// project owner's role, not a superuser, as on Supabase.
    pub fn db_url(&self) -> &str {
        &self.db_url
    }

    /// The PostgreSQL port.
    pub fn db_port(&self) -> u16 {
        self.db_port
    }

    /// PostgREST's base URL, `http://127.0.0.1:PORT` (no `/rest/v1` prefix).
    ///
    /// # Panics
    /// If the stack was started with [`Services::Postgres`].
    pub fn postgrest_url(&self) -> &str {
        self.postgrest_url
            .as_deref()
            .expect("PostgREST is not running: the stack was started with Services::Postgres")
    }

    /// Function name to base URL (`http://127.0.0.1:PORT`), sorted by name.
    pub fn functions(&self) -> &BTreeMap<String, String> {
        &self.functions
    }

    /// The base URL of function `name`.
    ///
    /// # Panics
    /// If `name` is not served (not built, or not selected).
    pub fn function_url(&self, name: &str) -> &str {
        match self.functions.get(name) {
            Some(url) => url,
            None => panic!(
                "function {name:?} is not served (served: {:?}); \
                 build it with scripts/build-functions.sh {name}",
                self.functions.keys().collect::<Vec<_>>()
            ),
        }
    }

    /// The stack's directory: `postgres.log`, `postgrest.log`,
    /// `workerd.log`, `sql.log`, `workerd.capnp`, the cluster.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The repository the stack was started from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The HS256 secret PostgREST and the functions verify tokens with.
    pub fn jwt_secret(&self) -> &str {
        &self.jwt_secret
    }

    /// The anon API key (role `anon`).
    pub fn anon_key(&self) -> String {
        tokens::anon_key(&self.jwt_secret)
    }

    /// The service API key (role `service_role`, bypasses RLS).
    pub fn service_key(&self) -> String {
        tokens::service_key(&self.jwt_secret)
    }

    /// A fresh one-hour access token for a seeded user.
    pub fn user_token(&self, user: DemoUser) -> String {
        tokens::user_token(&self.jwt_secret, user)
    }

    /// Signs arbitrary claims (a JSON object) with the stack's secret; start
    /// from [`tokens::user_claims`] to tweak a realistic token.
    pub fn mint(&self, claims: &serde_json::Value) -> anyhow::Result<String> {
        tokens::mint(&self.jwt_secret, claims)
    }

    /// How long each startup step took, in order.
    pub fn timings(&self) -> &[Timing] {
        &self.timings
    }

    /// Runs `sql` through `psql` as `postgres` and returns its unaligned,
    /// tuples-only output (`psql -At`): handy for test setup and checks.
    pub async fn psql(&self, sql: &str) -> anyhow::Result<String> {
        let out = self
            .postgres
            .psql()
            .args(["-A", "-t", "-c", sql])
            .output()
            .await
            .context("run psql")?;
        if !out.status.success() {
            bail!(
                "psql failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `pg_prove` on `files` against the stack's database as
    /// `postgres`, its output going straight to our stdout and stderr. The
    /// race files' dblink sessions log in with the password they are given
    /// in `tests.dblink_password`, and must race (`tests.require_races`):
    /// here a skipped race file is a broken setup (tests/db/_dblink.psql).
    pub async fn pg_prove(&self, files: &[PathBuf]) -> anyhow::Result<ExitStatus> {
        tokio::process::Command::new("pg_prove")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres"])
            .args(["-p", &self.db_port.to_string()])
            .env("PGPASSWORD", postgres::POSTGRES_PASSWORD)
            .env(
                "PGOPTIONS",
                format!(
                    "-c tests.dblink_password={} -c tests.require_races=on -c client_min_messages=warning",
                    postgres::POSTGRES_PASSWORD
                ),
            )
            .args(files)
            .current_dir(&self.root)
            .status()
            .await
            .context("run pg_prove (from libtap-parser-sourcehandler-pgtap-perl)")
    }

    /// Fails, quoting its log, if any server has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.postgres.process.ensure_running()?;
        if let Some(p) = self.postgrest.as_mut() {
            p.ensure_running()?;
        }
        if let Some(p) = self.workerd.as_mut() {
            p.ensure_running()?;
        }
        if let Some(s3) = self.s3.as_mut() {
            s3.process().ensure_running()?;
        }
        Ok(())
    }

    /// How long a workerd serving only `name` (a function, variant or JS
    /// worker of this stack, with the same bindings) takes from spawn to its
    /// first answer: the script's start-up, plus workerd's own (measure a
    /// [`StackOptions::js_worker`] for that part alone). It runs beside the
    /// stack's own workerd and is stopped before this returns.
    pub async fn startup_time(&self, name: &str) -> anyhow::Result<Duration> {
        let Some(function) = self.served.iter().find(|f| f.name == name) else {
            bail!("{name:?} is not served by this stack");
        };
        workerd::time_to_first_answer(&self.root, &self.dir, function).await
    }

    /// Kills PostgREST (SIGKILL, as a crash or an OOM kill would) while
    /// PostgreSQL and workerd keep running: the functions' calls to it are
    /// refused, or cut off mid-answer, until [`Stack::start_postgrest`].
    pub async fn kill_postgrest(&mut self) {
        if let Some(mut process) = self.postgrest.take() {
            process
                .signal_and_reap(nix::sys::signal::Signal::SIGKILL, Duration::from_secs(5))
                .await;
        }
    }

    /// Starts PostgREST again on the same port, returning once it serves
    /// (connected, schema cache loaded); its log goes on in `postgrest.log`.
    pub async fn start_postgrest(&mut self) -> anyhow::Result<()> {
        if self.postgrest.is_some() {
            bail!("PostgREST is already running");
        }
        let process = postgrest::start(
            &self.root,
            &self.dir,
            self.db_port,
            self.postgrest_port,
            &self.jwt_secret,
        )
        .await?;
        self.postgrest = Some(process);
        Ok(())
    }

    /// Restarts PostgreSQL as `pg_ctl restart -m fast` does (open
    /// transactions roll back, every session ends) while PostgREST and
    /// workerd keep running; returns once it accepts connections again.
    /// PostgREST reconnects by itself.
    pub async fn restart_postgres_fast(&mut self) -> anyhow::Result<()> {
        self.postgres.restart_fast().await
    }

    /// Process ids of the running servers, by name, for diagnostics.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        let mut pids = vec![("postgres", self.postgres.process.pid())];
        if let Some(p) = &self.postgrest {
            pids.push(("postgrest", p.pid()));
        }
        if let Some(p) = &self.workerd {
            pids.push(("workerd", p.pid()));
        }
        pids
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Front to back, so no server sees its upstream vanish mid-request
        // and fills its log with connection errors.
        if let Some(p) = self.workerd.as_mut() {
            p.stop();
        }
        if let Some(p) = self.postgrest.as_mut() {
            p.stop();
        }
        self.postgres.process.stop();
    }
}

/// Records how long each startup step took.
struct Stopwatch {
    last: Instant,
    timings: Vec<Timing>,
}

impl Stopwatch {
    fn new() -> Self {
        Self {
            last: Instant::now(),
            timings: Vec::new(),
        }
    }

    /// Ends `step`, which began where the previous one ended.
    fn lap(&mut self, step: &'static str) {
        let now = Instant::now();
        self.timings.push(Timing {
            step,
            took: now - self.last,
        });
        self.last = now;
    }
}

/// The functions to serve: the requested ones (each must have a build), or
/// every function with a build.
fn function_names(root: &Path, requested: Option<&[String]>) -> anyhow::Result<Vec<String>> {
    let built = workerd::discover(root)?;
    let Some(requested) = requested else {
        return Ok(built);
    };
    let mut names = Vec::new();
    for name in requested {
        if !built.contains(name) {
            bail!(
                "function {name:?} has no build at functions/{name}/build: \
                 run scripts/build-functions.sh {name}"
            );
        }
        names.push(name.clone());
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// Ports for Postgres, PostgREST and each function.
fn choose_ports(choice: PortChoice, functions: usize) -> anyhow::Result<(u16, u16, Vec<u16>)> {
    match choice {
        PortChoice::Ephemeral => {
            let mut ports = net::free_ports(2 + functions)?;
            let function_ports = ports.split_off(2);
            Ok((ports[0], ports[1], function_ports))
        }
        PortChoice::Dev => {
            let count = u16::try_from(functions).context("too many functions")?;
            let function_ports: Vec<u16> =
                (DEV_FIRST_FUNCTION_PORT..DEV_FIRST_FUNCTION_PORT + count).collect();
            // A server that cannot bind exits, but a probe could meanwhile
            // reach whatever holds the port (say, another `stack up`) and
            // report success; checking first gives a clear message instead.
            for port in [DEV_POSTGRES_PORT, DEV_POSTGREST_PORT]
                .into_iter()
                .chain(function_ports.iter().copied())
            {
                std::net::TcpListener::bind(("127.0.0.1", port)).with_context(|| {
                    format!("port {port} is in use (is another `stack up` or `stack db` running?)")
                })?;
            }
            Ok((DEV_POSTGRES_PORT, DEV_POSTGREST_PORT, function_ports))
        }
    }
}

/// Bindings one function's build gets on top of everyone's defaults.
///
/// ticket-intake's browser origins come from each account's
/// `allowed_origins`, so locally it lists none of its own: the demo page's
/// origin (http://localhost:3000) reaches it only through Acme's intake,
/// as a customer's site would in production, instead of through the
/// static list every other function allows it in.
fn build_bindings(build: &str) -> Vec<(String, String)> {
    match build {
        "ticket-intake" => vec![("CORS_ALLOWED_ORIGINS".to_owned(), String::new())],
        _ => Vec::new(),
    }
}

/// The values of the secret bindings the functions were given, each once.
fn configured_secrets(functions: &[Function]) -> Vec<(String, String)> {
    let mut secrets: Vec<(String, String)> = Vec::new();
    for (name, value) in functions.iter().flat_map(|f| &f.bindings) {
        if !is_secret_binding(name) {
            continue;
        }
        // Webhook secrets are comma-separated while being rotated; a JWT or
        // API key has no commas, so splitting them all is harmless.
        for one in value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
            if !secrets.iter().any(|(_, v)| v == one) {
                secrets.push((name.clone(), one.to_owned()));
            }
        }
    }
    secrets
}

/// The text bindings every function gets, then `extra` (later entries win).
fn function_bindings(
    postgrest_url: &str,
    jwt_secret: &str,
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    let defaults = [
        // No gateway here, so the "project URL" is PostgREST's too; code that
        // talks to PostgREST should prefer POSTGREST_URL, which has no
        // `/rest/v1` prefix locally.
        ("SUPABASE_URL", postgrest_url.to_owned()),
        ("POSTGREST_URL", postgrest_url.to_owned()),
        ("SUPABASE_ANON_KEY", tokens::anon_key(jwt_secret)),
        ("SUPABASE_SERVICE_ROLE_KEY", tokens::service_key(jwt_secret)),
        ("SUPABASE_JWT_SECRET", jwt_secret.to_owned()),
        ("JWT_AUDIENCE", "authenticated".to_owned()),
        ("CORS_ALLOWED_ORIGINS", "http://localhost:3000".to_owned()),
        // attachment-urls mints self-hosted Storage tokens with this secret:
        // no Storage server runs locally, and minting needs none.
        ("ATTACHMENT_SIGNER", "storage-local".to_owned()),
        ("STORAGE_JWT_SECRET", STORAGE_JWT_SECRET.to_owned()),
        ("RESEND_WEBHOOK_SECRET", RESEND_WEBHOOK_SECRET.to_owned()),
        ("POSTMARK_WEBHOOK_USER", POSTMARK_WEBHOOK_USER.to_owned()),
        (
            "POSTMARK_WEBHOOK_PASSWORD",
            POSTMARK_WEBHOOK_PASSWORD.to_owned(),
        ),
    ];
    let mut bindings: Vec<(String, String)> = defaults
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        // Every billing provider enabled, with its local secret.
        .chain(
            edge_billing::providers::PROVIDERS
                .iter()
                .map(|spec| (spec.secret_var.to_owned(), webhook_secret(spec.provider))),
        )
        .collect();
    for (name, value) in extra {
        match bindings.iter_mut().find(|(k, _)| k == name) {
            Some(existing) => existing.1 = value.clone(),
            None => bindings.push((name.clone(), value.clone())),
        }
    }
    bindings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_bindings_override_defaults_and_append() {
        let extra = vec![
            ("JWT_AUDIENCE".to_owned(), "other".to_owned()),
            (
                "CAPTCHA_VERIFY_URL".to_owned(),
                "http://127.0.0.1:9/".to_owned(),
            ),
        ];
        let bindings = function_bindings("http://127.0.0.1:1", DEMO_JWT_SECRET, &extra);
        let get = |k: &str| {
            bindings
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("JWT_AUDIENCE"), Some("other"));
        assert_eq!(get("CAPTCHA_VERIFY_URL"), Some("http://127.0.0.1:9/"));
        assert_eq!(get("POSTGREST_URL"), Some("http://127.0.0.1:1"));
        assert_eq!(
            bindings.iter().filter(|(k, _)| k == "JWT_AUDIENCE").count(),
            1
        );
    }

    #[test]
    fn configured_secrets_are_the_secret_bindings_each_once() {
        let function = |name: &str, extra: &[(&str, &str)]| Function {
            name: name.to_owned(),
            build: workerd::Build::Function(name.to_owned()),
            port: 1,
            bindings: function_bindings(
                "http://127.0.0.1:1",
                DEMO_JWT_SECRET,
                &extra
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<Vec<_>>(),
            ),
        };
        let secrets = configured_secrets(&[
            function("a", &[]),
            function("b", &[("STRIPE_WEBHOOK_SECRET", "whsec_new, whsec_old")]),
        ]);
        let values: Vec<&str> = secrets.iter().map(|(_, v)| v.as_str()).collect();
        assert!(values.contains(&DEMO_JWT_SECRET));
        assert!(values.contains(&tokens::service_key(DEMO_JWT_SECRET).as_str()));
        assert!(values.contains(&webhook_secret(edge_billing::event::Provider::Paddle).as_str()));
        assert!(values.contains(&"whsec_new") && values.contains(&"whsec_old"));
        assert!(!values.contains(&tokens::anon_key(DEMO_JWT_SECRET).as_str()));
        assert!(
            !values.contains(&"authenticated"),
            "JWT_AUDIENCE is no secret"
        );
        let mut unique = values.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), values.len(), "each value once");
    }

    /// Tests may start a stack inside `tokio::spawn` or keep one in a static.
    #[test]
    fn stack_and_its_start_future_are_send_and_sync() {
        fn send<T: Send>(_: &T) {}
        fn send_sync<T: Send + Sync>() {}
        send(&Stack::start(StackOptions::ephemeral()));
        send_sync::<Stack>();
    }

    #[test]
    fn ephemeral_ports_are_distinct() {
        let (db, rest, fns) = choose_ports(PortChoice::Ephemeral, 3).expect("ports");
        let mut all = vec![db, rest];
        all.extend(fns);
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 5);
    }

    #[test]
    fn pgtap_files_are_numbered_sql_in_order() {
        let root = tempfile::tempdir().expect("root");
        let dir = root.path().join("tests/db");
        std::fs::create_dir_all(&dir).expect("mkdir");
        for name in ["10_rls.sql", "01_schema.sql", "helpers.sql", "02_notes.txt"] {
            std::fs::write(dir.join(name), "").expect("write");
        }
        let names: Vec<_> = pgtap_files(root.path())
            .expect("list")
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["01_schema.sql", "10_rls.sql"]);
    }
}
