//! Replays, through the same checks the fuzzer runs ([`edge_fuzz::TARGETS`]),
//! every committed seed (`fuzz/seeds/<target>/`), every input a fuzzer ever
//! crashed on (`fuzz/regressions/<target>/`), and the billing fixtures for
//! the payload targets. So plain `cargo test` fails on a regression without
//! cargo-fuzz, nightly features or a corpus.
//!
//! Seen failing, each with one guarantee broken on purpose (then restored):
//! - `Secrets::verify` in crates/billing taking any 32-byte signature:
//!   `webhook_signature` failed on all five of its seeds;
//! - the audience check in crates/auth skipped: `jwt` failed on
//!   `seeds/jwt/signed-other-aud`;
//! - `safe_object_name` in crates/attachments returning the name as given:
//!   `attachments_upload` failed on `seeds/attachments_upload/unicode-name`
//!   (the storage-local signer refused the accepted upload's path);
//! - `Request::idempotency_key` in crates/core taking 256 characters:
//!   `http_request` failed on `seeds/http_request/long-key`;
//! - `escape` in crates/intake's pages leaving `<` alone: `intake_submission`
//!   failed on `seeds/intake_submission/form-error-referer`.
//!
//! Each crash kept under `fuzz/regressions/` failed here with its fix
//! reverted (its commit says so).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Files under `dir`, recursively, in a stable order.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if path.file_name().is_none_or(|n| n != "README.md") {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = root();
    let mut all = files(&root.join("fuzz/seeds").join(target));
    all.extend(files(&root.join("fuzz/regressions").join(target)));
    let fixtures = match target {
        "stripe_payload" => Some("stripe"),
        "paddle_payload" => Some("paddle"),
        "lemon_squeezy_payload" => Some("lemon-squeezy"),
        _ => None,
    };
    if let Some(provider) = fixtures {
        all.extend(files(&root.join("crates/billing/fixtures").join(provider)));
    }
    all
}

#[test]
fn every_seed_and_kept_crash_passes_its_target() {
    let mut failed = Vec::new();
    let mut count = 0;
    for (name, target) in edge_fuzz::TARGETS {
        let inputs = inputs(name);
        assert!(
            !inputs.is_empty(),
            "{name} has no seeds in fuzz/seeds/{name}"
        );
        for path in inputs {
            let data = std::fs::read(&path).expect("readable input");
            count += 1;
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                failed.push(format!("{name}: {}", path.display()));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {count} inputs failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// Each target here is a cargo-fuzz target in `fuzz/` and the other way
/// round, so `scripts/fuzz --smoke` runs them all.
#[test]
fn every_target_is_a_cargo_fuzz_target() {
    let root = root();
    let manifest = std::fs::read_to_string(root.join("fuzz/Cargo.toml")).expect("fuzz/Cargo.toml");
    let mut names: Vec<String> = files(&root.join("fuzz/fuzz_targets"))
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    let mut ours: Vec<String> = edge_fuzz::TARGETS
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .collect();
    ours.sort();
    assert_eq!(
        names, ours,
        "fuzz/fuzz_targets/ and edge_fuzz::TARGETS differ"
    );
    for name in &ours {
        let source = std::fs::read_to_string(root.join(format!("fuzz/fuzz_targets/{name}.rs")))
            .expect("target source");
        assert!(
            source.contains(&format!("edge_fuzz::{name}(")),
            "{name}.rs calls another target"
        );
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{name} is no [[bin]] in fuzz/Cargo.toml"
        );
    }
}

#[test]
fn fields_split_on_nul_and_the_last_takes_the_rest() {
    assert_eq!(
        edge_fuzz::fields::<3>(b"a\0b\0c\0d"),
        [&b"a"[..], b"b", b"c\0d"]
    );
    assert_eq!(edge_fuzz::fields::<3>(b"a"), [&b"a"[..], b"", b""]);
    assert_eq!(edge_fuzz::fields::<1>(b"a\0b"), [&b"a\0b"[..]]);
}
