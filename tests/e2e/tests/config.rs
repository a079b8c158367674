//! The configuration catalogue stays honest: every variable a function's
//! `from_vars` reads is in the README's configuration table, the table says
//! which functions read it and nothing else, wrangler.toml sets only
//! variables its env's function reads (and no secrets), and
//! `.dev.vars.example` lists exactly the table's secrets.
//!
//! What a function reads is recorded, not grepped: each `from_vars` runs
//! against a [`Recording`] source under every configuration that takes a
//! different branch (each captcha and email provider, each attachment
//! signer, every billing provider), so a name built at run time is caught
//! too. Seen failing: dropping the `EMAIL_TIMEOUT_MS` row from the README,
//! and adding `LOG_LEVEL = "debug"` to a wrangler env.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use edge_core::{Function, Host, Source, Vars};
use edge_testing::clock::{at, never};

/// A source that answers from `values` and remembers every name asked for.
struct Recording {
    values: BTreeMap<String, String>,
    read: RefCell<BTreeSet<String>>,
}

impl Source for Recording {
    fn get(&self, name: &str) -> Option<String> {
        self.read.borrow_mut().insert(name.to_owned());
        self.values.get(name).cloned()
    }
}

const FUNCTIONS: [&str; 4] = [
    "attachment-urls",
    "billing-webhook",
    "send-email",
    "ticket-intake",
];

/// A valid configuration shared by every function (a legacy service JWT
/// is not needed: an `sb_secret_` key is accepted as it is).
fn base() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SUPABASE_URL", "https://project.supabase.co"),
        ("SUPABASE_ANON_KEY", "sb_publishable_test"),
        ("SUPABASE_SERVICE_ROLE_KEY", "sb_secret_test"),
        (
            "SUPABASE_JWT_SECRET",
            "super-secret-jwt-token-with-at-least-32-characters",
        ),
    ]
}

/// Each function's configurations, one per branch its `from_vars` takes.
fn variants(function: &str) -> Vec<Vec<(&'static str, &'static str)>> {
    match function {
        "ticket-intake" => ["turnstile", "hcaptcha"]
            .map(|p| vec![("CAPTCHA_PROVIDER", p), ("CAPTCHA_SECRET", "0x-secret")])
            .to_vec(),
        "send-email" => ["resend", "postmark"]
            .map(|p| {
                vec![
                    ("EMAIL_PROVIDER", p),
                    ("EMAIL_API_KEY", "key"),
                    ("EMAIL_FROM", "Acme <support@acme.example>"),
                ]
            })
            .to_vec(),
        "attachment-urls" => vec![
            vec![("ATTACHMENT_SIGNER", "storage")],
            vec![
                ("ATTACHMENT_SIGNER", "storage-local"),
                (
                    "STORAGE_JWT_SECRET",
                    "local-storage-secret-at-least-32-chars",
                ),
            ],
            vec![
                ("ATTACHMENT_SIGNER", "s3"),
                ("S3_ENDPOINT", "https://s3.example.com"),
                ("S3_REGION", "us-east-1"),
                ("S3_BUCKET", "attachments"),
                ("S3_ACCESS_KEY_ID", "AKIDEXAMPLE"),
                ("S3_SECRET_ACCESS_KEY", "secret"),
            ],
        ],
        "billing-webhook" => vec![vec![
            ("STRIPE_WEBHOOK_SECRET", "whsec_test"),
            ("LEMON_SQUEEZY_WEBHOOK_SECRET", "ls-secret"),
            ("PADDLE_WEBHOOK_SECRET", "pdl_ntfset_test"),
        ]],
        other => panic!("no configurations for {other}"),
    }
}

/// Runs `function`'s `from_vars` on `values`; its error, if any, as text.
fn configure(function: &str, vars: &Vars<'_>) -> Result<(), String> {
    fn build<F: Function>(vars: &Vars<'_>) -> Result<(), String> {
        let host = Host {
            sleep: never,
            now: at::<1_700_000_000>,
        };
        F::from_vars(vars, host)
            .map(drop)
            .map_err(|e| format!("{e:?}"))
    }
    match function {
        "ticket-intake" => build::<edge_intake::TicketIntake>(vars),
        "send-email" => build::<edge_mail::SendEmail>(vars),
        "attachment-urls" => build::<edge_attachments::AttachmentUrls>(vars),
        "billing-webhook" => build::<edge_billing::BillingWebhooks>(vars),
        other => panic!("unknown function {other}"),
    }
}

/// Every variable `function` reads, over all its configurations.
fn reads(function: &str) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for variant in variants(function) {
        let source = Recording {
            values: base()
                .into_iter()
                .chain(variant)
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            read: RefCell::default(),
        };
        configure(function, &Vars(&source))
            .unwrap_or_else(|e| panic!("{function} refused its test configuration: {e}"));
        all.extend(source.read.into_inner());
    }
    all
}

/// A row of the README's configuration table.
#[derive(Debug)]
struct Row {
    secret: bool,
    read_by: BTreeSet<String>,
}

/// The README's configuration table, by variable (a row may name several).
fn catalogue(readme: &str) -> BTreeMap<String, Row> {
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has a Configuration section");
    let mut rows = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (names, kind, read_by) = (cells[1], cells[2], cells[3]);
        let read_by: BTreeSet<String> = match read_by {
            "all" => FUNCTIONS.iter().map(|f| f.to_string()).collect(),
            "functions with user routes" => {
                ["attachment-urls", "send-email"].map(String::from).into()
            }
            list => list.split(',').map(|f| f.trim().to_owned()).collect(),
        };
        for f in &read_by {
            assert!(
                FUNCTIONS.contains(&f.as_str()),
                "README row {names}: no function {f:?}"
            );
        }
        for name in names.split(',') {
            let name = name.trim().trim_matches('`').to_owned();
            let secret = match kind {
                "secret" => true,
                "var" => false,
                other => panic!("README row {name}: kind {other:?} is neither var nor secret"),
            };
            let row = Row {
                secret,
                read_by: read_by.clone(),
            };
            assert!(
                rows.insert(name.clone(), row).is_none(),
                "README lists {name} twice"
            );
        }
    }
    rows
}

fn repo_file(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

#[test]
fn every_variable_read_is_in_the_readme_for_exactly_its_functions() {
    let table = catalogue(&repo_file("README.md"));
    let mut problems = Vec::new();
    let mut read_by: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for function in FUNCTIONS {
        for name in reads(function) {
            match table.get(&name) {
                None => problems.push(format!(
                    "{function} reads {name}, which the README does not list"
                )),
                Some(row) if !row.read_by.contains(function) => problems.push(format!(
                    "{function} reads {name}, but the README says only {:?} do",
                    row.read_by
                )),
                Some(_) => {}
            }
            read_by.entry(name).or_default().insert(function.to_owned());
        }
    }
    for (name, row) in &table {
        for function in &row.read_by {
            if !read_by.get(name).is_some_and(|r| r.contains(function)) {
                problems.push(format!(
                    "the README says {function} reads {name}; it does not"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn wrangler_sets_only_plain_variables_its_function_reads() {
    let table = catalogue(&repo_file("README.md"));
    let wrangler: toml::Table = repo_file("wrangler.toml")
        .parse()
        .expect("wrangler.toml parses");
    let envs = wrangler["env"]
        .as_table()
        .expect("wrangler.toml has [env.*]");
    let mut problems = Vec::new();
    for function in FUNCTIONS {
        let reads = reads(function);
        let vars = envs
            .get(function)
            .and_then(|e| e.get("vars"))
            .and_then(|v| v.as_table())
            .unwrap_or_else(|| panic!("wrangler.toml has no [env.{function}.vars]"));
        for name in vars.keys() {
            if !reads.contains(name) {
                problems.push(format!(
                    "wrangler.toml sets {name} for {function}, which never reads it"
                ));
            }
            if table.get(name).is_some_and(|r| r.secret) {
                problems.push(format!(
                    "wrangler.toml sets the secret {name} in plain text for {function}"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn dev_vars_example_lists_exactly_the_secrets() {
    let table = catalogue(&repo_file("README.md"));
    let secrets: BTreeSet<&str> = table
        .iter()
        .filter(|(_, r)| r.secret)
        .map(|(n, _)| n.as_str())
        .collect();
    let example = repo_file(".dev.vars.example");
    let listed: BTreeSet<&str> = example
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
        .filter(|k| !k.is_empty())
        .collect();
    assert_eq!(
        listed, secrets,
        ".dev.vars.example against the README's secrets"
    );
}

/// `[package.metadata.edge-stack]` of `function`'s Cargo.toml: how the
/// local stack serves it.
fn local_settings(function: &str) -> toml::Table {
    let manifest: toml::Table = repo_file(&format!("functions/{function}/Cargo.toml"))
        .parse()
        .expect("Cargo.toml parses");
    manifest["package"]["metadata"]["edge-stack"]
        .as_table()
        .unwrap_or_else(|| {
            panic!("functions/{function}/Cargo.toml has no [package.metadata.edge-stack]")
        })
        .clone()
}

#[test]
fn the_local_stack_sets_only_variables_each_function_reads() {
    let mut problems = Vec::new();
    for function in FUNCTIONS {
        let reads = reads(function);
        let settings = local_settings(function);
        let bindings = settings
            .get("bindings")
            .and_then(|b| b.as_table())
            .cloned()
            .unwrap_or_default();
        for name in bindings.keys() {
            if !reads.contains(name) {
                problems.push(format!(
                    "functions/{function}/Cargo.toml sets {name} locally, which it never reads"
                ));
            }
        }
        if settings.get("billing-webhook-secrets") == Some(&toml::Value::Boolean(true)) {
            for spec in edge_billing::providers::PROVIDERS {
                if !reads.contains(spec.secret_var) {
                    problems.push(format!(
                        "{function} is given {} locally, which it never reads",
                        spec.secret_var
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `scripts/dev` serves every function on the port it always has:
/// bookmarks, the README and `stripe listen --forward-to` name them.
#[test]
fn each_function_declares_its_dev_port() {
    let ports: Vec<(&str, Option<i64>)> = FUNCTIONS
        .iter()
        .map(|&f| {
            (
                f,
                local_settings(f)
                    .get("dev-port")
                    .and_then(|p| p.as_integer()),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("attachment-urls", Some(8787)),
            ("billing-webhook", Some(8788)),
            ("send-email", Some(8789)),
            ("ticket-intake", Some(8790)),
        ]
    );
}
