//! `stack`: the local stack for humans.
//!
//! ```text
//! stack up        PostgreSQL + PostgREST + built functions on the dev ports
//! stack db        PostgreSQL + PostgREST only
//! stack pgtap     run tests/db/[0-9]*.sql with pg_prove on a throwaway database (or only those named)
//! stack token W   print a JWT, W = owner | member | outsider | anon | service
//! stack sign P F  print the signature header provider P would send with file F
//! stack bench     measure every route against its floor (scripts/bench runs it)
//! stack contract  openapi.yaml against every function with schemathesis (scripts/test runs it)
//! ```
//!
//! Thin glue over the `edge_stack` library, which the end-to-end tests use
//! too. `up` and `db` run until Ctrl-C (or SIGTERM), then stop everything.

// Printing to stdout is this binary's job.
#![allow(clippy::print_stdout)]

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{bail, Context as _};
use edge_billing::{event::Provider, providers::PROVIDERS, signature};
use edge_stack::{
    bench, contract, pgtap_files, repo_root, tokens, DemoUser, Services, Stack, StackOptions,
    DEMO_JWT_SECRET,
};
use tokio::signal::unix::{signal, SignalKind};

const USAGE: &str = "\
usage: stack <command>

  up          PostgreSQL, PostgREST and every built function on the dev ports
              (54322, 54321, 8787...); Ctrl-C stops everything
  db          PostgreSQL and PostgREST only
  pgtap [NAME..]
              pg_prove tests/db/[0-9]*.sql against a throwaway database;
              with NAMEs, only the files whose name contains one
  token WHO   print a JWT; WHO is owner, member, outsider, anon or service
  sign P FILE print the webhook signature header provider P (stripe,
              lemon-squeezy, paddle) would send with FILE's bytes, signed now
              with $STRIPE_WEBHOOK_SECRET (etc.) or the local demo secret:
                curl -H \"$(stack sign stripe ev.json)\" --data-binary @ev.json \\
                  http://localhost:8788/webhooks/stripe
  bench [--smoke] [--duration SECS] [--warmup SECS] [--connections 1,8,32]
        [--startup-samples N] [--out DIR] [--name NAME] [--note TEXT]
        [--only TEXT]
              every route with wrk against its floor, on a stack of its own
              (ephemeral ports); writes DIR/NAME.json and .md (default
              bench/results/<date>-<cores>core; --smoke: one second per run
              at one connection, into target/bench-smoke/smoke; --only:
              the routes whose METHOD /path contains TEXT)
  contract [--max-examples N] [--only TEXT] [--seed N]
              openapi.yaml against every built function with schemathesis
              (st run --checks all; user routes with the member's JWT), on
              a stack of its own (ephemeral ports); fails on any finding.
              Default 20 examples per operation: what scripts/test runs

The repository is found from STACK_ROOT or the crate's location.
STACK_KEEP_DIR=1 keeps the temp dir (logs, cluster) after the stack stops.";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stack: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["up"] => {
            // attachment-urls signs for the local S3-compatible store, so the
            // URLs it prints download and upload for real.
            let opts = StackOptions::dev()
                .with_s3()
                .binding("ATTACHMENT_SIGNER", "s3");
            serve(webhook_secrets_from_env(opts)).await
        }
        ["db"] => serve(StackOptions::dev().services(Services::Database)).await,
        ["pgtap", only @ ..] => pgtap(only).await,
        ["token", who] => {
            println!("{}", token(who)?);
            Ok(ExitCode::SUCCESS)
        }
        ["sign", provider, file] => {
            println!("{}", sign(provider, file)?);
            Ok(ExitCode::SUCCESS)
        }
        ["bench", options @ ..] => {
            let report = bench::run(bench_options(options)?).await?;
            println!("{}", report.markdown());
            Ok(ExitCode::SUCCESS)
        }
        ["contract", options @ ..] => contract(options).await,
        ["help" | "-h" | "--help"] => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprintln!("{USAGE}");
            Ok(ExitCode::from(2))
        }
    }
}

/// `stack bench`'s flags over the full or smoke defaults.
fn bench_options(args: &[&str]) -> anyhow::Result<bench::Options> {
    let root = repo_root();
    let mut opts = if args.contains(&"--smoke") {
        bench::Options::smoke(&root)
    } else {
        bench::Options::full(&root)
    };
    // Whole seconds: what wrk's -d takes.
    let seconds = |v: &str| -> anyhow::Result<Duration> {
        match v.parse::<u64>() {
            Ok(s) if s <= 600 => Ok(Duration::from_secs(s)),
            _ => bail!("not a whole number of seconds up to 600: {v:?}"),
        }
    };
    let mut rest = args.iter();
    while let Some(&flag) = rest.next() {
        if flag == "--smoke" {
            continue;
        }
        let value = *rest
            .next()
            .with_context(|| format!("{flag} needs a value (stack help)"))?;
        match flag {
            "--duration" => opts.duration = seconds(value)?,
            "--warmup" => opts.warmup = seconds(value)?,
            "--connections" => {
                opts.connections = value
                    .split(',')
                    .map(|c| c.trim().parse().ok().filter(|&c: &u32| c > 0))
                    .collect::<Option<Vec<u32>>>()
                    .with_context(|| {
                        format!("--connections takes counts like 1,8,32: {value:?}")
                    })?;
            }
            "--startup-samples" => {
                opts.startup_samples = value
                    .parse()
                    .with_context(|| format!("--startup-samples takes a count: {value:?}"))?;
            }
            "--out" => opts.out = PathBuf::from(value),
            "--name" => opts.name = value.to_owned(),
            "--note" => opts.note = Some(value.to_owned()),
            "--only" => opts.only = Some(value.to_owned()),
            other => bail!("unknown bench option {other:?} (stack help)"),
        }
    }
    Ok(opts)
}

/// `stack contract`: exits non-zero when schemathesis found anything in
/// any function, after running all of them.
async fn contract(args: &[&str]) -> anyhow::Result<ExitCode> {
    let mut opts = contract::Options::ci(&repo_root());
    let mut rest = args.iter();
    while let Some(&flag) = rest.next() {
        let value = *rest
            .next()
            .with_context(|| format!("{flag} needs a value (stack help)"))?;
        match flag {
            "--max-examples" => {
                opts.max_examples = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .with_context(|| format!("--max-examples takes a count: {value:?}"))?;
            }
            "--only" => opts.only = Some(value.to_owned()),
            "--seed" => {
                opts.seed = Some(
                    value
                        .parse()
                        .with_context(|| format!("--seed takes a number: {value:?}"))?,
                );
            }
            other => bail!("unknown contract option {other:?} (stack help)"),
        }
    }
    let outcomes = contract::run(opts).await?;
    println!("\nschemathesis, --checks all:");
    for o in &outcomes {
        let verdict = if o.passed { "passed" } else { "FAILED" };
        println!("  {:<16} {verdict:<7} {:>6.1} s", o.function, o.seconds);
    }
    Ok(if outcomes.iter().all(|o| o.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A webhook secret set in the environment (the one `stripe listen` prints,
/// say) replaces the demo one, for `up` and for `sign` alike.
fn webhook_secrets_from_env(mut opts: StackOptions) -> StackOptions {
    for variable in PROVIDERS.iter().map(|spec| spec.secret_var) {
        if let Some(value) = std::env::var(variable)
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            opts = opts.binding(variable, value);
        }
    }
    opts
}

/// `Name: value` for curl's `-H`, so a saved event can be replayed locally.
fn sign(provider: &str, file: &str) -> anyhow::Result<String> {
    let Some(provider) = Provider::from_slug(provider) else {
        let known: Vec<&str> = PROVIDERS.iter().map(|spec| spec.slug).collect();
        bail!(
            "unknown provider {provider:?}: expected one of {}",
            known.join(", ")
        );
    };
    // Several secrets may be configured; the first one signs.
    let secret = std::env::var(provider.spec().secret_var)
        .ok()
        .and_then(|list| list.split(',').next().map(|s| s.trim().to_owned()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| edge_stack::webhook_secret(provider));
    let body = std::fs::read(file).with_context(|| format!("reading {file}"))?;
    let now = chrono::Utc::now()
        .timestamp()
        .try_into()
        .unwrap_or_default();
    Ok(format!(
        "{}: {}",
        signature::header_name(provider),
        signature::sign(provider, &secret, now, &body)
    ))
}

fn token(who: &str) -> anyhow::Result<String> {
    Ok(match who {
        "anon" => tokens::anon_key(DEMO_JWT_SECRET),
        "service" => tokens::service_key(DEMO_JWT_SECRET),
        user => match user.parse::<DemoUser>() {
            Ok(user) => tokens::user_token(DEMO_JWT_SECRET, user),
            Err(_) => {
                bail!("unknown token {who:?}: expected owner, member, outsider, anon or service")
            }
        },
    })
}

/// Starts the stack, prints how to use it, and holds it until a signal.
async fn serve(opts: StackOptions) -> anyhow::Result<ExitCode> {
    let want_functions = opts.services == Services::All;
    println!("Starting the stack from {} ...", opts.root.display());
    let mut stack = Stack::start(opts).await?;
    print_summary(&stack, want_functions);

    let mut interrupt = signal(SignalKind::interrupt()).context("listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("listen for SIGTERM")?;
    let mut health = tokio::time::interval(Duration::from_secs(1));
    let outcome = loop {
        tokio::select! {
            _ = interrupt.recv() => break Ok(()),
            _ = terminate.recv() => break Ok(()),
            _ = health.tick() => {
                // A crashed server should end the session loudly rather than
                // leave the developer debugging connection errors.
                if let Err(e) = stack.ensure_running() {
                    break Err(e);
                }
            }
        }
    };
    println!("\nStopping ...");
    drop(stack);
    outcome?;
    println!("Stopped; nothing left running.");
    Ok(ExitCode::SUCCESS)
}

fn print_summary(stack: &Stack, want_functions: bool) {
    let anon = stack.anon_key();
    let owner = stack.user_token(DemoUser::Owner);

    println!("\nReady. Logs and config: {}", stack.dir().display());
    for t in stack.timings() {
        println!("  {:<36} {:>6} ms", t.step, t.took.as_millis());
    }

    println!("\nURLs");
    println!("  PostgreSQL  {}", stack.db_url());
    println!("  PostgREST   {}", stack.postgrest_url());
    for (name, url) in stack.functions() {
        println!("  {name:<11} {url}");
    }
    if want_functions && stack.functions().is_empty() {
        println!("  (no built functions: run scripts/build-functions.sh, then restart)");
    }
    if let Some(email) = stack.email() {
        println!(
            "  email       {}  (local Resend and Postmark stand-in: /emails, /email)",
            email.url()
        );
    }
    if let Some(auth) = stack.auth() {
        println!(
            "  jwks        {}/auth/v1/.well-known/jwks.json  (local Auth stand-in)",
            auth.url()
        );
    }
    if let Some(captcha) = stack.captcha() {
        println!(
            "  captcha     {}{}  (local Turnstile stand-in; hCaptcha's at {})",
            captcha.url(),
            edge_stack::stubs::TURNSTILE_SITEVERIFY_PATH,
            edge_stack::stubs::HCAPTCHA_SITEVERIFY_PATH
        );
    }
    if let Some(s3) = stack.s3() {
        println!(
            "  s3          {}/{}  (local S3-compatible store; attachment-urls signs for it)",
            s3.url(),
            edge_stack::s3::S3_BUCKET
        );
    }

    println!("\nJWTs (secret: {})", stack.jwt_secret());
    println!("  anon key     {anon}");
    println!("  service key  {}", stack.service_key());
    for user in DemoUser::ALL {
        println!("  {:<12} {}", user.name(), stack.user_token(user));
    }
    println!("  (user tokens last 1 hour; `stack token owner` prints a fresh one)");

    println!("\nTry");
    println!("  psql '{}'", stack.db_url());
    println!(
        "  curl '{}/accounts?select=name,slug' -H 'apikey: {anon}' -H 'Authorization: Bearer {owner}'",
        stack.postgrest_url()
    );
    for url in stack.functions().values() {
        println!("  curl '{url}/health?deep=1'");
    }
    if let Some(url) = stack.functions().get("send-email") {
        // Delivered to the local Resend stand-in, charged to the owner.
        println!(
            "  curl -i {url}/emails -H 'authorization: Bearer {owner}' -H 'content-type: application/json' -H \"idempotency-key: demo-$RANDOM\" -d '{{\"to\":\"ada@example.com\",\"subject\":\"Hello\",\"text\":\"Sent from the local stack.\"}}'"
        );
    }
    if let Some(url) = stack.functions().get("attachment-urls") {
        let member = stack.user_token(DemoUser::Member);
        // The seed's hello.txt, downloaded through the URL the function
        // signs (sed picks the URL out of the JSON answer).
        println!(
            "  curl -s \"$(curl -s {url}/attachments/sign -H 'authorization: Bearer {member}' -H 'content-type: application/json' -d '{{\"ids\":[\"dddddddd-dddd-4ddd-8ddd-dddddddddddd\"]}}' | sed -E 's/.*\"url\":\"([^\"]+)\".*/\\1/')\""
        );
        // A new file on Max Member's reply: the signed PUT, then the bytes.
        println!(
            "  curl -i -X PUT -H 'content-type: text/plain' --data-binary 'notes' \"$(curl -s {url}/attachments/upload-url -H 'authorization: Bearer {member}' -H 'content-type: application/json' -d '{{\"message_id\":\"eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee\",\"file_name\":\"notes.txt\",\"content_type\":\"text/plain\",\"size\":5}}' | sed -E 's/.*\"url\":\"([^\"]+)\".*/\\1/')\""
        );
    }
    if let Some(url) = stack.functions().get("billing-webhook") {
        // Documented events, signed as each provider would with the stack's
        // secret; a second delivery answers "duplicate".
        for (provider, fixture) in [
            ("stripe", "stripe/customer.subscription.created.json"),
            ("lemon-squeezy", "lemon-squeezy/order_created.json"),
            ("paddle", "paddle/transaction.completed.one-off.json"),
        ] {
            println!(
                "  f=crates/billing/fixtures/{fixture}; curl -i {url}/webhooks/{provider} -H \"$(cargo run -q -p edge-stack -- sign {provider} $f)\" --data-binary @$f"
            );
        }
        // Live test-mode events from Stripe, signed by the CLI with its own
        // secret, which the stack then needs.
        println!(
            "  stripe listen --forward-to {url}/webhooks/stripe   # then restart with STRIPE_WEBHOOK_SECRET=<the whsec_ it prints> scripts/dev"
        );
    }
    if let Some(url) = stack.functions().get("ticket-intake") {
        // The stand-in accepts any token starting with `pass`, once.
        println!(
            "  curl -i {url}/tickets -H 'content-type: application/json' -d '{{\"intake_key\":\"acme\",\"title\":\"Printer on fire\",\"content\":\"Help!\",\"customer_email\":\"ada@example.com\",\"captcha_token\":\"pass-'$RANDOM'\"}}'"
        );
    }
    println!("\nCtrl-C stops everything.");
}

/// Throwaway database with the project's SQL, then pg_prove; exits with
/// pg_prove's status. With names, only the files whose name contains one of
/// them (`stack pgtap 051 054`), for a quicker run while writing a test.
async fn pgtap(only: &[&str]) -> anyhow::Result<ExitCode> {
    let root = repo_root();
    let mut files = pgtap_files(&root)?;
    if !only.is_empty() {
        files.retain(|f| {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            only.iter().any(|wanted| name.contains(wanted))
        });
    }
    if files.is_empty() {
        bail!(
            "no pgTAP files match {}/tests/db/[0-9]*.sql",
            root.display()
        );
    }
    // pg_prove runs from the root, so relative names work and read better.
    let files: Vec<PathBuf> = files
        .iter()
        .map(|f| f.strip_prefix(&root).unwrap_or(f).to_owned())
        .collect();
    let opts = StackOptions {
        root,
        ..StackOptions::ephemeral().services(Services::Postgres)
    };
    let stack = Stack::start(opts).await?;
    let status = stack.pg_prove(&files).await?;
    drop(stack);
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}
