//! `stack contract`: `openapi.yaml` checked against the running functions.
//!
//! Starts a stack of its own on ephemeral ports and runs
//! [schemathesis](https://schemathesis.readthedocs.io/) (`st run --checks
//! all`) once per function, on the operations under that function's path
//! prefix in the document (`/send-email/...`: the functions ignore the
//! prefix). User routes get the demo member's JWT, so the run reaches past
//! authentication into validation, RLS and the database; schemathesis's
//! `ignored_auth` check then also sends them without it and with a wrong
//! one. The webhooks cannot be signed by schemathesis: every delivery it
//! makes is refused as unsigned (400), which the document declares.
//!
//! `tests/contract/` holds what the run needs besides the document:
//! `schemathesis.toml` (the webhooks' expected 400s) and `hooks.py` (a new
//! `Idempotency-Key` per schema-valid case).
//!
//! A finding of any check in any function fails the run, so `scripts/test`
//! fails on a document and a function that disagree. `st` comes from
//! `$SCHEMATHESIS_BIN`, else `.tools/schemathesis/bin/st` (what
//! `scripts/install-tools.sh` installs).

use std::{path::PathBuf, process::Stdio, time::Instant};

use anyhow::{bail, Context as _};

use crate::{DemoUser, Stack, StackOptions};

/// How one run goes.
#[derive(Debug, Clone)]
pub struct Options {
    /// The repository (`openapi.yaml`, `functions/*/build`).
    pub root: PathBuf,
    /// `st run --max-examples`: test cases per operation and phase.
    pub max_examples: u32,
    /// Only the functions whose name contains this.
    pub only: Option<String>,
    /// Fixed seed, for a reproducible run; `None`: schemathesis picks one
    /// and prints it.
    pub seed: Option<u64>,
}

impl Options {
    /// The bounded run `scripts/test` makes: under two minutes for all four
    /// functions on two shared cores.
    pub fn ci(root: &std::path::Path) -> Self {
        Self {
            root: root.to_owned(),
            max_examples: 20,
            only: None,
            seed: None,
        }
    }
}

/// One function's outcome.
#[derive(Debug)]
pub struct Outcome {
    pub function: String,
    pub passed: bool,
    pub seconds: f64,
}

/// Where `st` is: `$SCHEMATHESIS_BIN` or the project's venv.
pub fn st_bin(root: &std::path::Path) -> PathBuf {
    std::env::var_os("SCHEMATHESIS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".tools/schemathesis/bin/st"))
}

/// Runs schemathesis against every built function; each one's output goes
/// straight to the terminal. Returns every function's outcome; the caller
/// fails when one did not pass.
pub async fn run(opts: Options) -> anyhow::Result<Vec<Outcome>> {
    let st = st_bin(&opts.root);
    if !st.exists() {
        bail!(
            "{} not found: run scripts/install-tools.sh (or set SCHEMATHESIS_BIN)",
            st.display()
        );
    }
    let spec = opts.root.join("openapi.yaml");
    let mut stack = Stack::start(StackOptions {
        root: opts.root.clone(),
        ..StackOptions::ephemeral()
    })
    .await?;
    if stack.functions().is_empty() {
        bail!("no built functions: run scripts/build-functions.sh first");
    }
    // Schema-valid mails must not turn into 402s once the member's 300
    // sign-up credits are spent (schemathesis counts a 402 to valid data
    // as a finding); the daily limits' 429s would be fine, but they would
    // stop the run from reaching the provider at all.
    stack
        .psql(&format!(
            "insert into public.email_sender_settings \
               (user_id, custom_content_allowed, daily_mail_limit, daily_recipient_limit) \
             values ('{member}', true, 1000000000, 1000000000) \
             on conflict (user_id) do update set custom_content_allowed = true, \
               daily_mail_limit = 1000000000, daily_recipient_limit = 1000000000; \
             select public.grant_credits('{member}', 1000000000, 'manual_adjustment', 'contract');",
            member = DemoUser::Member.id()
        ))
        .await?;
    let member = stack.user_token(DemoUser::Member);
    let mut outcomes = Vec::new();
    for (name, url) in stack.functions().clone() {
        if opts.only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let mut cmd = tokio::process::Command::new(&st);
        cmd.env(
            "SCHEMATHESIS_HOOKS",
            opts.root.join("tests/contract/hooks.py"),
        )
        .arg("--config-file")
        .arg(opts.root.join("tests/contract/schemathesis.toml"))
        .arg("run")
        .arg(&spec)
        .args(["--url", url.as_str()])
        .args(["--include-path-regex", &format!("^/{name}/")])
        .args(["--checks", "all"])
        .args(["--max-examples", &opts.max_examples.to_string()])
        // Two cores; more workers only queue in workerd.
        .args(["--workers", "2"])
        .args(["--request-timeout", "10"])
        .arg("--no-color")
        // The token is the stack's own throwaway demo JWT, but the
        // output should not be a place where tokens show up.
        .args(["--output-sanitize", "true"])
        .stdin(Stdio::null())
        // Its cache (`.schemathesis/`) goes with the stack's temp dir.
        .current_dir(stack.dir());
        if let Some(seed) = opts.seed {
            cmd.args(["--seed", &seed.to_string()]);
        }
        // Only routes that declare `userJwt` read it; the others ignore it.
        cmd.args(["--header", &format!("Authorization: Bearer {member}")]);
        eprintln!("\n==> schemathesis: {name} ({url})");
        let started = Instant::now();
        let status = cmd
            .status()
            .await
            .with_context(|| format!("run {}", st.display()))?;
        let seconds = started.elapsed().as_secs_f64();
        outcomes.push(Outcome {
            function: name,
            passed: status.success(),
            seconds,
        });
        // A crashed server makes every later finding noise.
        stack.ensure_running()?;
    }
    drop(stack);
    Ok(outcomes)
}
