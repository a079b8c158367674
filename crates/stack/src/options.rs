//! What [`Stack::start`](crate::Stack::start) brings up, and how: the
//! options a caller sets, and the repository they point at.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::DEMO_JWT_SECRET;

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

/// What [`Stack::start`](crate::Stack::start) brings up, and how.
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
    /// Start an S3-compatible server for the functions ([`crate::s3`]).
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
    /// placeholders stand for what is only known once the stack runs:
    /// `{captcha}`, `{email}`, `{auth}` and `{storage}` for those
    /// stand-ins' base URLs (e.g. `{captcha}/hcaptcha/siteverify`),
    /// `{refused}` for a local URL whose connections are refused
    /// ([`crate::stubs::refused_url`]), and the rest of the table in
    /// `crates/stack/src/bindings.rs`.
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
