//! A real S3-compatible server for attachment-urls' `s3` signer, so the
//! presigned URLs it makes are tried against a store that checks them.
//!
//! The server is `s3s-fs` 0.14.1 from crates.io (`cargo install s3s-fs
//! --version 0.14.1 --features binary --locked`, done by
//! `scripts/install-tools.sh`): objects are files under the stack's
//! directory, one directory per bucket. With an access key configured it
//! verifies SigV4 presigned URLs as S3 does: the signature over method,
//! path, query and the signed headers (`SignatureDoesNotMatch`), and
//! `X-Amz-Date` + `X-Amz-Expires` against its clock (`Request has
//! expired`), both 403. Chosen over npm's `s3rver` 3.7.1, which accepts any
//! V4 signature and checks only the expiry.
//!
//! Started only when asked for ([`StackOptions::with_s3`]) and functions
//! are served; its endpoint and settings are then the `{s3...}`
//! placeholders ([`crate::bindings`]), which attachment-urls' local
//! settings give its `S3_*` bindings (path-style). Only
//! `ATTACHMENT_SIGNER=s3` reads them, so a variant with that one binding
//! signs for this server. A caller's own `S3_*` bindings still win, e.g.
//! to point at another store.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use nix::sys::signal::Signal;

use crate::{net, process::Supervised, Stack, StackOptions};

/// The bucket, created empty at start.
pub const S3_BUCKET: &str = "attachments";
/// Any region will do: s3s-fs signs and checks with whatever the URL names.
pub const S3_REGION: &str = "us-east-1";
/// The server's only credentials; public and local only, like the demo
/// JWT secret.
pub const S3_ACCESS_KEY_ID: &str = "LOCALS3ACCESSKEY";
pub const S3_SECRET_ACCESS_KEY: &str = "local-s3-secret-access-key";
/// The version `scripts/install-tools.sh` installs.
pub const S3S_FS_VERSION: &str = "0.14.1";

/// The bytes of dev/seed.sql's attachment (`hello.txt` on Acme's ticket),
/// stored at start so a signed download URL of it returns them.
pub const SEED_OBJECT_KEY: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa/eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee/ffffffff-ffff-4fff-8fff-ffffffffffff/hello.txt";
pub const SEED_OBJECT_BYTES: &[u8] = b"hello, world\n";

/// It binds at once; this is only for a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A running s3s-fs; stopped when dropped (with the stack).
#[derive(Debug)]
pub struct S3Server {
    process: Supervised,
    url: String,
    data: PathBuf,
}

impl S3Server {
    /// Starts s3s-fs on a free port with [`S3_BUCKET`] created, returning
    /// once it answers HTTP.
    pub(crate) async fn start(dir: &Path) -> anyhow::Result<Self> {
        let bin = binary()?;
        let data = dir.join("s3");
        // A bucket is a directory to s3s-fs and an object a file in it:
        // creating them here saves signed requests.
        let seed = data.join(S3_BUCKET).join(SEED_OBJECT_KEY);
        std::fs::create_dir_all(seed.parent().unwrap_or(&data))?;
        std::fs::write(&seed, SEED_OBJECT_BYTES)?;
        let port = net::free_ports(1)?[0];
        let mut cmd = std::process::Command::new(bin);
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY_ID])
            .args(["--secret-key", S3_SECRET_ACCESS_KEY])
            .arg(&data)
            // Why a request was refused is logged at this level.
            .env("RUST_LOG", "info")
            .current_dir(dir);
        let mut process = Supervised::spawn(
            "s3s-fs",
            cmd,
            &dir.join("s3.log"),
            Signal::SIGTERM,
            Signal::SIGKILL,
        )?;
        // Unsigned requests are answered 403; any answer means it is up.
        process
            .wait_until("s3s-fs to answer HTTP", READY_TIMEOUT, || async move {
                net::http_status(port, "/").await.is_some()
            })
            .await?;
        Ok(Self {
            process,
            url: format!("http://127.0.0.1:{port}"),
            data,
        })
    }

    /// The endpoint, `http://127.0.0.1:PORT` (path-style: the bucket is the
    /// first path segment).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where an object is stored: `<data>/<bucket>/<key>`.
    pub fn object_file(&self, key: &str) -> PathBuf {
        self.data.join(S3_BUCKET).join(key)
    }

    pub(crate) fn process(&mut self) -> &mut Supervised {
        &mut self.process
    }
}

impl StackOptions {
    /// Also starts an S3-compatible server (s3s-fs) for the functions.
    #[must_use]
    pub fn with_s3(mut self) -> Self {
        self.s3 = true;
        self
    }
}

impl Stack {
    /// The S3-compatible server, when started ([`StackOptions::with_s3`]).
    pub fn s3(&self) -> Option<&S3Server> {
        self.stand_ins.s3.as_ref()
    }
}

/// `s3s-fs` from cargo's bin directory (where `cargo install` put it, which
/// need not be on PATH), else from PATH.
fn binary() -> anyhow::Result<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
    let path = std::env::var_os("PATH").unwrap_or_default();
    let candidates = cargo_home
        .map(|home| home.join("bin"))
        .into_iter()
        .chain(std::env::split_paths(&path));
    for dir in candidates {
        let bin = dir.join("s3s-fs");
        if bin.is_file() {
            return Ok(bin);
        }
    }
    bail!(
        "s3s-fs is not installed: run scripts/install-tools.sh \
         (cargo install s3s-fs --version {S3S_FS_VERSION} --features binary --locked)"
    )
}
