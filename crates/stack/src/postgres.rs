//! A throwaway PostgreSQL 15 cluster: initdb into the stack's directory,
//! start the server, load the project's SQL.
//!
//! Roles are split as on Supabase: the cluster's superuser is
//! `supabase_admin`, used only to run `dev/bootstrap.sql` (over the Unix
//! socket, which trusts local connections); everything after it (the
//! migrations, the seed, pgTAP, the tests' own SQL) runs as `postgres`,
//! which bootstrap makes a non-superuser as Supabase does. TCP connections
//! need a password, as on Supabase, so a non-superuser's dblink sessions
//! (the pgTAP race files) work here as they would there.
//!
//! Postgres refuses to run as root, and this project's machines run as root,
//! so when we are root both `initdb` and `postgres` run as the `postgres`
//! system user (which the Debian package creates) in a directory it owns.
//! Durability is switched off (`fsync=off` and friends): the cluster lives
//! for one test run, and this makes migrations several times faster.

use std::{
    fs,
    os::unix::fs::chown,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use anyhow::{bail, Context as _};
use nix::{
    sys::signal::Signal,
    unistd::{Gid, Uid, User},
};

use crate::process::Supervised;

/// The major version the project targets (Supabase's current one).
const PG_MAJOR: &str = "15";

/// The bootstrap superuser (Supabase's platform role).
const SUPERUSER: &str = "supabase_admin";

/// `postgres`'s local password, set by `dev/bootstrap.sql`: the Supabase
/// CLI's local default, a convention rather than a secret.
pub(crate) const POSTGRES_PASSWORD: &str = "postgres";

/// Unix socket: trusted (the bootstrap superuser); TCP: passwords.
const PG_HBA: &str = "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n";

/// How long the server may take to accept connections after start.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running cluster, stopped with its [`Supervised`] process.
#[derive(Debug)]
pub(crate) struct Postgres {
    pub(crate) process: Supervised,
    bindir: PathBuf,
    port: u16,
    dir: PathBuf,
    run_as: Option<RunAs>,
}

/// The unprivileged account the server runs as, when we are root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: Uid,
    gid: Gid,
}

impl Postgres {
    /// Creates a cluster under `dir` and starts it on 127.0.0.1:`port`,
    /// returning once it accepts connections.
    pub(crate) async fn start(dir: &Path, port: u16) -> anyhow::Result<Self> {
        let bindir = bindir()?;
        let run_as = run_as()?;
        let data = dir.join("pgdata");
        let socket_dir = dir.join("pgsocket");
        fs::create_dir_all(&socket_dir)?;
        if let Some(user) = run_as {
            for path in [dir, &socket_dir] {
                chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                    .with_context(|| format!("chown {} to postgres", path.display()))?;
            }
        }

        let mut initdb = Command::new(bindir.join("initdb"));
        initdb
            .arg("--pgdata")
            .arg(&data)
            .arg(format!("--username={SUPERUSER}"))
            .args(["--auth=trust", "--encoding=UTF8"])
            // C.UTF-8 ships with glibc itself, so no locale package is needed.
            .args(["--locale=C.UTF-8", "--no-sync"])
            .current_dir(dir);
        run_as_user(&mut initdb, run_as);
        let out = output(initdb).await.context("run initdb")?;
        fs::write(
            dir.join("initdb.log"),
            [&out.stdout[..], &out.stderr[..]].concat(),
        )?;
        if !out.status.success() {
            bail!(
                "initdb failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // Written as the server's user would (it owns pgdata); root may.
        fs::write(data.join("pg_hba.conf"), PG_HBA).context("write pg_hba.conf")?;

        let process = serve(&bindir, dir, port, run_as).await?;
        Ok(Self {
            process,
            bindir,
            port,
            dir: dir.to_owned(),
            run_as,
        })
    }

    /// What `pg_ctl restart -m fast` does: SIGINT (fast shutdown: open
    /// transactions roll back, sessions end), wait for the server to exit,
    /// start it again on the same cluster and port. Done here rather than by
    /// `pg_ctl`, which would leave the new server detached from our
    /// supervision (no death signal, not stopped with the stack).
    pub(crate) async fn restart_fast(&mut self) -> anyhow::Result<()> {
        self.process
            .signal_and_reap(Signal::SIGINT, Duration::from_secs(30))
            .await;
        self.process = serve(&self.bindir, &self.dir, self.port, self.run_as).await?;
        Ok(())
    }

    /// A `psql` connected as `postgres` over TCP, as a Supabase project's
    /// owner connects: quiet, without reading `~/.psqlrc`.
    pub(crate) fn psql(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(self.bindir.join("psql"));
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args(["-U", "postgres", "-d", "postgres"])
            .args(["-p", &self.port.to_string()])
            .env("PGPASSWORD", POSTGRES_PASSWORD)
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// A `psql` connected as the bootstrap superuser over the Unix socket:
    /// for `dev/bootstrap.sql` only, since nothing on Supabase runs as it.
    fn psql_superuser(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(self.bindir.join("psql"));
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(self.dir.join("pgsocket"))
            .args(["-U", SUPERUSER, "-d", "postgres"])
            .args(["-p", &self.port.to_string()])
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// Runs each file through `psql` in order, stopping at the first error:
    /// the first (`dev/bootstrap.sql`) as the superuser, the rest as
    /// `postgres`. Relative `\i` paths resolve against `cwd` (the repository
    /// root). Everything psql prints is appended to `log`.
    pub(crate) async fn apply(
        &self,
        files: &[PathBuf],
        cwd: &Path,
        log: &Path,
    ) -> anyhow::Result<()> {
        let mut transcript = Vec::new();
        for (i, file) in files.iter().enumerate() {
            let mut psql = if i == 0 {
                self.psql_superuser()
            } else {
                self.psql()
            };
            let out = psql
                .arg("-f")
                .arg(file)
                .current_dir(cwd)
                .output()
                .await
                .context("run psql")?;
            transcript.extend_from_slice(format!("==> {}\n", file.display()).as_bytes());
            transcript.extend_from_slice(&out.stdout);
            transcript.extend_from_slice(&out.stderr);
            fs::write(log, &transcript)?;
            if !out.status.success() {
                bail!(
                    "applying {} failed ({}):\n{}",
                    file.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim_end()
                );
            }
        }
        Ok(())
    }
}

/// Starts the server on the cluster in `dir`, returning once it accepts
/// connections.
async fn serve(
    bindir: &Path,
    dir: &Path,
    port: u16,
    run_as: Option<RunAs>,
) -> anyhow::Result<Supervised> {
    let mut server = Command::new(bindir.join("postgres"));
    server
        .arg("-D")
        .arg(dir.join("pgdata"))
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(dir.join("pgsocket"))
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args(["-c", "fsync=off"])
        .args(["-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off"])
        .current_dir(dir);
    run_as_user(&mut server, run_as);
    // SIGINT is Postgres's "fast" shutdown (roll back, exit); SIGQUIT is
    // "immediate", the right thing when our process is already gone.
    let mut process = Supervised::spawn(
        "postgres",
        server,
        &dir.join("postgres.log"),
        Signal::SIGINT,
        Signal::SIGQUIT,
    )?;

    let isready = bindir.join("pg_isready");
    process
        .wait_until("PostgreSQL to accept connections", READY_TIMEOUT, || {
            let mut probe = tokio::process::Command::new(&isready);
            probe
                .args(["-q", "-h", "127.0.0.1", "-U", SUPERUSER, "-d", "postgres"])
                .args(["-t", "1", "-p", &port.to_string()]);
            async move { probe.status().await.is_ok_and(|s| s.success()) }
        })
        .await?;
    Ok(process)
}

/// The SQL that makes a fresh cluster look like the project's database, in
/// the order it must run: roles and schemas Supabase would provide, the
/// migrations by name (their timestamps sort chronologically), the seed.
///
/// `dev/bootstrap.sql` is required: it runs as the superuser and must create
/// the `postgres` login (password [`POSTGRES_PASSWORD`]) the rest runs as,
/// and the roles PostgREST logs in and switches to; the seed is optional.
pub(crate) fn sql_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let bootstrap = root.join("dev/bootstrap.sql");
    if !bootstrap.is_file() {
        bail!(
            "{} is missing; it creates the roles PostgREST needs",
            bootstrap.display()
        );
    }
    let mut files = vec![bootstrap];
    let migrations = root.join("migrations");
    if migrations.is_dir() {
        let mut found = Vec::new();
        for entry in fs::read_dir(&migrations)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "sql") && path.is_file() {
                found.push(path);
            }
        }
        found.sort();
        files.extend(found);
    }
    let seed = root.join("dev/seed.sql");
    if seed.is_file() {
        files.push(seed);
    }
    Ok(files)
}

/// Where the PostgreSQL 15 server binaries live: `$PG_BINDIR`, Debian's
/// versioned directory, or whatever `pg_config` reports (on Debian that
/// wrapper follows the newest installed version, hence it comes last).
fn bindir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        return Ok(dir.into());
    }
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{PG_MAJOR}/bin"));
    if debian.join("postgres").is_file() {
        return Ok(debian);
    }
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .context("PostgreSQL 15 not found: install postgresql-15 (scripts/install-tools.sh)")?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !out.status.success() || !dir.join("postgres").is_file() {
        bail!("PostgreSQL 15 not found: install postgresql-15 (scripts/install-tools.sh)");
    }
    Ok(dir)
}

/// `Some(postgres)` when we are root and must drop privileges.
fn run_as() -> anyhow::Result<Option<RunAs>> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let user = User::from_name("postgres")?
        .context("running as root needs the `postgres` system user (from postgresql-15)")?;
    Ok(Some(RunAs {
        uid: user.uid,
        gid: user.gid,
    }))
}

fn run_as_user(cmd: &mut Command, run_as: Option<RunAs>) {
    use std::os::unix::process::CommandExt as _;
    if let Some(user) = run_as {
        // std drops supplementary groups too when switching away from root.
        cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
}

async fn output(cmd: Command) -> std::io::Result<Output> {
    tokio::process::Command::from(cmd).output().await
}
