//! The running stack: its processes, their start in order, and what
//! tests and the `stack` binary ask of it once it runs.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    process::ExitStatus,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

use crate::{
    bindings::{configured_secrets, function_bindings, LocalSettings, Placeholders},
    counter, net,
    postgres::{self, Postgres},
    postgrest,
    process::Supervised,
    stand_ins::StandIns,
    stubs, tokens,
    workerd::{self, Build, Function},
    DemoUser, PortChoice, Services, StackOptions, Variant, DEV_FIRST_FUNCTION_PORT,
    DEV_POSTGREST_PORT, DEV_POSTGRES_PORT,
};

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
    /// The third parties the functions call, stood in for.
    pub(crate) stand_ins: StandIns,
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
    pub(crate) counters: BTreeMap<String, counter::Counter>,
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
        let plan = Plan::new(&root, &opts)?;
        let tempdir = tempfile::Builder::new()
            .prefix("edge-stack-")
            .tempdir()
            .context("create the stack's temp dir")?;
        let dir = tempdir.path().to_owned();

        // Third parties the functions call, stood in for locally; the S3
        // store first, before the other ports are chosen, so none of them
        // can be its.
        let stand_ins = if plan.functions.is_empty() {
            StandIns::none()
        } else {
            StandIns::start(&dir, opts.s3).await?
        };
        let ports = choose_ports(opts.ports, &plan)?;
        let db_url = format!(
            "postgresql://postgres:{}@127.0.0.1:{}/postgres",
            postgres::POSTGRES_PASSWORD,
            ports.db
        );
        let postgrest_url = format!("http://127.0.0.1:{}", ports.postgrest);
        let placeholders = Placeholders::new(&postgrest_url, &opts.jwt_secret, &stand_ins);
        let (functions, counters) = plan
            .serve(&opts, &placeholders, &postgrest_url, ports.served)
            .await?;

        // workerd needs nothing from the database to load, so it starts now
        // and boots while Postgres does.
        let mut workerd = if functions.is_empty() {
            None
        } else {
            let config = workerd::write_config(&root, &dir, &functions)?;
            Some(workerd::spawn(&root, &dir, &config)?)
        };
        watch.lap("temp dir, ports, workerd config");

        let postgres = Postgres::start(&dir, ports.db).await?;
        watch.lap("PostgreSQL initdb + start");

        postgres.apply(&sql, &root, &dir.join("sql.log")).await?;
        watch.lap("apply bootstrap, migrations, seed");

        let postgrest = if opts.services >= Services::Database {
            let process =
                postgrest::start(&root, &dir, ports.db, ports.postgrest, &opts.jwt_secret).await?;
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
            stand_ins,
            root,
            db_port: ports.db,
            db_url,
            postgrest_port: ports.postgrest,
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
        self.stand_ins.captcha.as_ref()
    }

    /// The Supabase Auth stand-in serving the JWKS (present when functions
    /// are served).
    pub fn auth(&self) -> Option<&stubs::Stub> {
        self.stand_ins.auth.as_ref()
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
        self.stand_ins.storage.as_ref()
    }

    /// The email provider stand-in (Resend's API) the functions are
    /// configured with (present when functions are served).
    pub fn email(&self) -> Option<&stubs::Stub> {
        self.stand_ins.email.as_ref()
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
        if let Some(s3) = self.stand_ins.s3.as_mut() {
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

/// What workerd is to serve, before ports and stand-ins are known: each
/// function with its local settings, then the variants, JavaScript
/// workers and cron triggers (none unless [`Services::All`]).
struct Plan<'a> {
    functions: Vec<(String, LocalSettings)>,
    variants: &'a [Variant],
    js_workers: &'a [(String, PathBuf)],
    cron_triggers: &'a [(String, String)],
}

impl<'a> Plan<'a> {
    fn new(root: &Path, opts: &'a StackOptions) -> anyhow::Result<Self> {
        if opts.services < Services::All {
            return Ok(Self {
                functions: Vec::new(),
                variants: &[],
                js_workers: &[],
                cron_triggers: &[],
            });
        }
        let functions = function_names(root, opts.functions.as_deref())?
            .into_iter()
            .map(|name| {
                let settings = LocalSettings::read(root, &name)?;
                Ok((name, settings))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let plan = Self {
            functions,
            variants: &opts.variants,
            js_workers: &opts.js_workers,
            cron_triggers: &opts.cron_triggers,
        };
        for variant in plan.variants {
            if plan.settings(&variant.function).is_none() {
                bail!(
                    "variant {:?} serves {:?}, which is not served",
                    variant.name,
                    variant.function
                );
            }
        }
        Ok(plan)
    }

    /// The local settings of served function `name`.
    fn settings(&self, name: &str) -> Option<&LocalSettings> {
        self.functions
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, settings)| settings)
    }

    /// How many names workerd serves, and so how many ports it needs
    /// besides the functions' own.
    fn extras(&self) -> usize {
        self.variants.len() + self.js_workers.len() + self.cron_triggers.len()
    }

    /// Everything to serve on `ports` (one per served name, in plan
    /// order), with its bindings; and the counting proxies of counted
    /// variants, which start here.
    async fn serve(
        &self,
        opts: &StackOptions,
        placeholders: &Placeholders,
        postgrest_url: &str,
        ports: Vec<u16>,
    ) -> anyhow::Result<(Vec<Function>, BTreeMap<String, counter::Counter>)> {
        let mut ports = ports.into_iter();
        let mut port = || ports.next().context("a port for every served name");
        let mut served = Vec::new();
        for (name, settings) in &self.functions {
            served.push(Function {
                name: name.clone(),
                build: Build::Function(name.clone()),
                port: port()?,
                bindings: function_bindings(placeholders, settings, &[&opts.bindings]),
            });
        }
        // A counted variant's POSTGREST_URL is its own counting proxy.
        let mut counters = BTreeMap::new();
        for variant in self.variants {
            let mut own = variant.bindings.clone();
            if variant.count_postgrest {
                let counter = counter::Counter::start(postgrest_url).await?;
                own.push(("POSTGREST_URL".to_owned(), counter.url().to_owned()));
                counters.insert(variant.name.clone(), counter);
            }
            let settings = self
                .settings(&variant.function)
                .cloned()
                .unwrap_or_default();
            served.push(Function {
                name: variant.name.clone(),
                build: Build::Function(variant.function.clone()),
                port: port()?,
                bindings: function_bindings(placeholders, &settings, &[&opts.bindings, &own]),
            });
        }
        for (name, source) in self.js_workers {
            served.push(Function {
                name: name.clone(),
                build: Build::Js(source.clone()),
                port: port()?,
                bindings: Vec::new(),
            });
        }
        for (name, target) in self.cron_triggers {
            served.push(Function {
                name: name.clone(),
                build: Build::Cron(target.clone()),
                port: port()?,
                bindings: Vec::new(),
            });
        }
        Ok((served, counters))
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

/// The ports the servers listen on.
#[derive(Debug)]
struct Ports {
    db: u16,
    postgrest: u16,
    /// One per name workerd serves, in [`Plan`] order.
    served: Vec<u16>,
}

/// Free ports, or the dev ports: each function's own (its `dev-port`),
/// then the variants, JavaScript workers and cron triggers on the ports
/// after the highest of them.
fn choose_ports(choice: PortChoice, plan: &Plan<'_>) -> anyhow::Result<Ports> {
    let count = plan.functions.len() + plan.extras();
    match choice {
        PortChoice::Ephemeral => {
            let mut ports = net::free_ports(2 + count)?;
            let served = ports.split_off(2);
            Ok(Ports {
                db: ports[0],
                postgrest: ports[1],
                served,
            })
        }
        PortChoice::Dev => {
            let mut served: Vec<u16> = Vec::with_capacity(count);
            for (name, settings) in &plan.functions {
                let Some(port) = settings.dev_port else {
                    bail!(
                        "functions/{name}/Cargo.toml declares no dev port: \
                         add `dev-port = <port>` under [package.metadata.edge-stack]"
                    );
                };
                if let Some(i) = served.iter().position(|&p| p == port) {
                    bail!(
                        "functions {} and {name} both declare dev port {port}",
                        plan.functions[i].0
                    );
                }
                served.push(port);
            }
            let next = served
                .iter()
                .max()
                .map_or(DEV_FIRST_FUNCTION_PORT, |&max| max.saturating_add(1));
            let extras = u16::try_from(plan.extras()).context("too many served names")?;
            served.extend(next..next.saturating_add(extras));
            // A server that cannot bind exits, but a probe could meanwhile
            // reach whatever holds the port (say, another `stack up`) and
            // report success; checking first gives a clear message instead.
            for port in [DEV_POSTGRES_PORT, DEV_POSTGREST_PORT]
                .into_iter()
                .chain(served.iter().copied())
            {
                std::net::TcpListener::bind(("127.0.0.1", port)).with_context(|| {
                    format!("port {port} is in use (is another `stack up` or `stack db` running?)")
                })?;
            }
            Ok(Ports {
                db: DEV_POSTGRES_PORT,
                postgrest: DEV_POSTGREST_PORT,
                served,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests may start a stack inside `tokio::spawn` or keep one in a static.
    #[test]
    fn stack_and_its_start_future_are_send_and_sync() {
        fn send<T: Send>(_: &T) {}
        fn send_sync<T: Send + Sync>() {}
        send(&Stack::start(StackOptions::ephemeral()));
        send_sync::<Stack>();
    }

    /// A plan of functions with these dev ports, and `extras` variants.
    fn plan(dev_ports: &[(&str, Option<u16>)], extras: &[Variant]) -> Plan<'static> {
        let variants: &'static [Variant] = Box::leak(extras.to_vec().into_boxed_slice());
        Plan {
            functions: dev_ports
                .iter()
                .map(|(name, dev_port)| {
                    let settings = LocalSettings {
                        dev_port: *dev_port,
                        ..LocalSettings::default()
                    };
                    ((*name).to_owned(), settings)
                })
                .collect(),
            variants,
            js_workers: &[],
            cron_triggers: &[],
        }
    }

    fn variant(name: &str) -> Variant {
        Variant {
            name: name.to_owned(),
            function: "a".to_owned(),
            bindings: Vec::new(),
            count_postgrest: false,
        }
    }

    #[test]
    fn ephemeral_ports_are_distinct() {
        let plan = plan(&[("a", None), ("b", None)], &[variant("a-again")]);
        let ports = choose_ports(PortChoice::Ephemeral, &plan).expect("ports");
        let mut all = vec![ports.db, ports.postgrest];
        all.extend(ports.served);
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 5);
    }

    #[test]
    fn dev_ports_are_each_functions_own_and_the_rest_follow_the_highest() {
        // Far from the real dev ports, so a running `stack up` is no bother;
        // the fixed Postgres and PostgREST ports must be free, though.
        if std::net::TcpListener::bind(("127.0.0.1", DEV_POSTGRES_PORT)).is_err()
            || std::net::TcpListener::bind(("127.0.0.1", DEV_POSTGREST_PORT)).is_err()
        {
            return;
        }
        let plan = plan(
            &[("a", Some(18_890)), ("b", Some(18_887))],
            &[variant("a-again"), variant("a-more")],
        );
        let ports = choose_ports(PortChoice::Dev, &plan).expect("ports");
        assert_eq!(ports.db, DEV_POSTGRES_PORT);
        assert_eq!(ports.postgrest, DEV_POSTGREST_PORT);
        assert_eq!(ports.served, [18_890, 18_887, 18_891, 18_892]);
    }

    #[test]
    fn dev_ports_must_be_declared_and_distinct() {
        let missing =
            choose_ports(PortChoice::Dev, &plan(&[("a", None)], &[])).expect_err("no dev port");
        assert!(format!("{missing:#}").contains("functions/a/Cargo.toml declares no dev port"));
        let twice = choose_ports(
            PortChoice::Dev,
            &plan(&[("a", Some(18_887)), ("b", Some(18_887))], &[]),
        )
        .expect_err("one port twice");
        assert!(format!("{twice:#}").contains("functions a and b both declare dev port 18887"));
    }
}
