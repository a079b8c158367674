//! The built functions served by one `workerd` process, the runtime
//! Cloudflare runs in production, driven by a generated Cap'n Proto config.
//!
//! `wrangler dev` would do the same job, but it is a development proxy that
//! is several times slower and needs two ports per worker; one bare workerd
//! with a socket per function starts in a fraction of a second. Each function
//! gets its configuration as text bindings, as `wrangler.toml` `[vars]`
//! would give it, and may fetch anything, including 127.0.0.1 (PostgREST,
//! stub servers), through a network service.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context as _};
use nix::sys::signal::Signal;

use crate::{net, process::Supervised};

/// The compatibility date the functions are written against.
const COMPATIBILITY_DATE: &str = "2025-01-01";

/// Loading a few wasm modules takes well under a second; the margin is for
/// busy CI machines.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One function to serve.
#[derive(Debug, Clone)]
pub(crate) struct Function {
    /// The service's name, and so its key in [`crate::Stack::functions`].
    pub(crate) name: String,
    /// What it serves.
    pub(crate) build: Build,
    pub(crate) port: u16,
    pub(crate) bindings: Vec<(String, String)>,
}

/// The code a served name runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Build {
    /// `functions/<name>/build` (`index.js` + `index_bg.wasm`): the named
    /// function's own name, or another's for variants (the same build with
    /// other bindings).
    Function(String),
    /// One plain JavaScript ES module, no wasm
    /// ([`crate::StackOptions::js_worker`]).
    Js(PathBuf),
    /// The named function's Cron Trigger: [`CRON_TRIGGER_JS`], bound to it
    /// ([`crate::StackOptions::cron_trigger`]).
    Cron(String),
}

/// The worker behind a [`Build::Cron`]: each request fires the bound
/// function's `scheduled` handler through `Fetcher.scheduled()` (workerd's,
/// behind the experimental `service_binding_extra_handlers` flag) and
/// answers its outcome (`ok`, or `exception` when the handler threw).
const CRON_TRIGGER_JS: &str = r#"export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    // The stack's readiness probe must not fire the trigger.
    if (url.pathname === "/health") return new Response("ok");
    const cron = url.searchParams.get("cron") ?? "*/5 * * * *";
    const result = await env.TARGET.scheduled({ cron, scheduledTime: Date.now() });
    return Response.json({ outcome: result.outcome, noRetry: result.noRetry });
  },
};
"#;

/// Names of the functions with a build to serve: every `functions/<name>`
/// holding `build/index.js` and `build/index_bg.wasm`, sorted by name.
pub(crate) fn discover(root: &Path) -> anyhow::Result<Vec<String>> {
    let dir = root.join("functions");
    let mut names = Vec::new();
    if !dir.is_dir() {
        return Ok(names);
    }
    for entry in fs::read_dir(&dir).with_context(|| format!("list {}", dir.display()))? {
        let path = entry?.path();
        let build = path.join("build");
        if build.join("index.js").is_file() && build.join("index_bg.wasm").is_file() {
            if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Copies each function's build into `dir/workers/<name>/` and writes
/// `dir/workerd.capnp` serving them all.
///
/// Copying (rather than pointing at `functions/*/build`) is needed because
/// Cap'n Proto's `embed` takes paths relative to the config file, and it
/// also means a rebuild during a test run cannot change what is served.
pub(crate) fn write_config(
    root: &Path,
    dir: &Path,
    functions: &[Function],
) -> anyhow::Result<PathBuf> {
    let mut services = String::new();
    let mut sockets = String::new();
    for f in functions {
        let to = dir.join("workers").join(&f.name);
        fs::create_dir_all(&to)?;
        let modules = format!("workers/{}", f.name);
        let js = quote(&format!("{modules}/index.js"));
        let module_list = match &f.build {
            Build::Function(build) => {
                let from = root.join("functions").join(build).join("build");
                for file in ["index.js", "index_bg.wasm"] {
                    fs::copy(from.join(file), to.join(file))
                        .with_context(|| format!("copy {}", from.join(file).display()))?;
                }
                let wasm = quote(&format!("{modules}/index_bg.wasm"));
                format!(
                    "(name = \"index.js\", esModule = embed {js}),\n        \
                     (name = \"index_bg.wasm\", wasm = embed {wasm}),"
                )
            }
            Build::Js(source) => {
                fs::copy(source, to.join("index.js"))
                    .with_context(|| format!("copy {}", source.display()))?;
                format!("(name = \"index.js\", esModule = embed {js}),")
            }
            Build::Cron(_) => {
                fs::write(to.join("index.js"), CRON_TRIGGER_JS)?;
                format!("(name = \"index.js\", esModule = embed {js}),")
            }
        };

        let mut bindings: Vec<String> = f
            .bindings
            .iter()
            .map(|(name, value)| format!("(name = {}, text = {})", quote(name), quote(value)))
            .collect();
        let mut flags = String::new();
        if let Build::Cron(target) = &f.build {
            bindings.push(format!("(name = \"TARGET\", service = {})", quote(target)));
            flags = "\n      compatibilityFlags = [\"service_binding_extra_handlers\"],".to_owned();
        }
        let bindings = bindings.join(",\n        ");
        write!(
            services,
            r#"
  (name = {service}, worker = (
      modules = [
        {module_list}
      ],
      compatibilityDate = "{COMPATIBILITY_DATE}",{flags}
      bindings = [
        {bindings}
      ],
      globalOutbound = "internet",
  )),"#,
            service = quote(&f.name),
        )?;
        write!(
            sockets,
            "\n  (name = {}, address = \"127.0.0.1:{}\", http = (), service = {}),",
            quote(&format!("http-{}", f.name)),
            f.port,
            quote(&f.name),
        )?;
    }

    let config = format!(
        r#"# Generated by edge-stack for this run; edits are lost.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [{services}
  # Outbound fetches: "private" and "local" let functions reach PostgREST
  # and test stubs on 127.0.0.1, which workerd refuses by default.
  (name = "internet", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [{sockets}
  ],
);
"#
    );
    let path = dir.join("workerd.capnp");
    fs::write(&path, config)?;
    Ok(path)
}

/// Starts workerd on `config` without waiting; see [`wait_ready`].
pub(crate) fn spawn(root: &Path, dir: &Path, config: &Path) -> anyhow::Result<Supervised> {
    let bin = root.join("node_modules/@cloudflare/workerd-linux-64/bin/workerd");
    if !bin.is_file() {
        bail!(
            "{} is missing: run `npm ci` (scripts/install-tools.sh)",
            bin.display()
        );
    }
    let mut cmd = std::process::Command::new(bin);
    // Without --verbose workerd already logs console output and panics with
    // their stacks; --verbose only repeats them with C++ frames.
    // --experimental: the Cron Trigger stand-in's `Fetcher.scheduled()` is
    // behind an experimental compatibility flag; nothing else uses one.
    cmd.arg("serve")
        .arg("--experimental")
        .arg(config)
        .current_dir(dir);
    Supervised::spawn(
        "workerd",
        cmd,
        &dir.join("workerd.log"),
        Signal::SIGTERM,
        Signal::SIGKILL,
    )
}

/// Waits until every function answers `GET /health` with any status: that
/// proves the socket is bound and the module loaded, which is all startup
/// can promise (a 503 from a deep health check is the test's business).
pub(crate) async fn wait_ready(
    process: &mut Supervised,
    functions: &[Function],
) -> anyhow::Result<()> {
    for f in functions {
        let port = f.port;
        process
            .wait_until(
                &format!("function {} to answer GET /health", f.name),
                READY_TIMEOUT,
                || async move { net::http_status(port, "/health").await.is_some() },
            )
            .await?;
    }
    Ok(())
}

/// How long a workerd serving only `function` (on a free port, from its own
/// directory under `dir`) takes from spawn to its first answer to
/// `GET /health`: reading the config, compiling the script and its wasm, and
/// binding the socket. The process is stopped again before returning.
pub(crate) async fn time_to_first_answer(
    root: &Path,
    dir: &Path,
    function: &Function,
) -> anyhow::Result<Duration> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("startup-{}-", function.name))
        .tempdir_in(dir)
        .context("create a start-up measurement dir")?;
    let port = net::free_ports(1)?[0];
    let alone = Function {
        port,
        ..function.clone()
    };
    let config = write_config(root, dir.path(), std::slice::from_ref(&alone))?;
    let started = std::time::Instant::now();
    let mut process = spawn(root, dir.path(), &config)?;
    let deadline = started + READY_TIMEOUT;
    loop {
        if net::http_status(port, "/health").await.is_some() {
            let took = started.elapsed();
            process.stop();
            return Ok(took);
        }
        process
            .ensure_running()
            .with_context(|| format!("workerd serving only {}", function.name))?;
        if std::time::Instant::now() >= deadline {
            bail!(
                "workerd serving only {} did not answer within {READY_TIMEOUT:?}",
                function.name
            );
        }
        // Short, since the figure is tens to hundreds of milliseconds.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A Cap'n Proto string literal: quotes, backslashes and control characters
/// escaped, so binding values can hold anything (URLs, JSON, secrets).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_capnp_specials() {
        assert_eq!(quote("plain"), r#""plain""#);
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("line\nnext\u{1}"), r#""line\nnext\x01""#);
        assert_eq!(quote("héllo"), "\"héllo\"");
    }

    #[test]
    fn config_has_a_service_and_socket_per_function() {
        let root = tempfile::tempdir().expect("root");
        let dir = tempfile::tempdir().expect("dir");
        for name in ["alpha", "beta"] {
            let build = root.path().join("functions").join(name).join("build");
            fs::create_dir_all(&build).expect("mkdir");
            fs::write(build.join("index.js"), "export default {}").expect("js");
            fs::write(build.join("index_bg.wasm"), b"\0asm").expect("wasm");
        }
        // A crate without a build is not served.
        fs::create_dir_all(root.path().join("functions/gamma/src")).expect("mkdir");

        let names = discover(root.path()).expect("discover");
        assert_eq!(names, ["alpha", "beta"]);

        let functions: Vec<Function> = names
            .iter()
            .zip([8787, 8788])
            .map(|(name, port)| Function {
                name: name.clone(),
                build: Build::Function(name.clone()),
                port,
                bindings: vec![("LOG_LEVEL".into(), "info".into())],
            })
            .collect();
        let path = write_config(root.path(), dir.path(), &functions).expect("config");
        let config = fs::read_to_string(path).expect("read");
        assert!(config.contains(r#"(name = "alpha", worker = ("#));
        assert!(config.contains(r#"address = "127.0.0.1:8788", http = (), service = "beta""#));
        assert!(config.contains(r#"(name = "LOG_LEVEL", text = "info")"#));
        assert!(dir.path().join("workers/beta/index_bg.wasm").is_file());
    }

    #[test]
    fn a_js_worker_is_one_module_without_wasm() {
        let root = tempfile::tempdir().expect("root");
        let dir = tempfile::tempdir().expect("dir");
        let source = root.path().join("floor.js");
        fs::write(&source, "export default {}").expect("js");
        let functions = [Function {
            name: "floor".into(),
            build: Build::Js(source),
            port: 8799,
            bindings: Vec::new(),
        }];
        let path = write_config(root.path(), dir.path(), &functions).expect("config");
        let config = fs::read_to_string(path).expect("read");
        assert!(
            config.contains(r#"(name = "index.js", esModule = embed "workers/floor/index.js"),"#)
        );
        assert!(!config.contains("index_bg.wasm"));
        assert!(dir.path().join("workers/floor/index.js").is_file());
    }
}
