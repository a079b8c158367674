//! Every fixture on disk, of every provider, parses to an event with the
//! contract's shape.

mod common;

use common::*;
use edge_billing::event::*;
use edge_core::Error;
use serde_json::json;

// --- All fixtures -----------------------------------------------------------------------------

/// Every fixture on disk parses to an event we apply (no fixture is ignored
/// or invalid, except invoice.payment_failed and Paddle's chargeback warning,
/// ignored by design), and its
/// JSON for the database has the contract's shape.
#[test]
fn every_fixture_parses() {
    for provider in [Provider::Stripe, Provider::LemonSqueezy, Provider::Paddle] {
        let dir = format!(
            "{}/fixtures/{}",
            env!("CARGO_MANIFEST_DIR"),
            provider.as_str()
        );
        let mut names = fixture_names(&dir);
        names.sort();
        assert!(names.len() >= 5, "{dir}: {names:?}");
        for name in names {
            // `2024-09-30.acacia/invoice.paid`: Stripe's per API version.
            let base = name.rsplit('/').next().unwrap_or(&name);
            if base.starts_with("thin.") {
                // A thin event is answered 400 (see parse_stripe.rs).
                let answer = parse(provider, fixture(provider, &name).as_bytes());
                assert!(
                    matches!(answer, Err(Error::BadRequest { .. })),
                    "{name}: {answer:?}"
                );
                continue;
            }
            let e = event(provider, &name);
            assert!(
                !matches!(e.change, Change::Invalid { .. }),
                "{name}: {:?}",
                e.change
            );
            // Ignored by design: a failed payment, a chargeback warning.
            if base != "invoice.payment_failed" && !name.ends_with(".chargeback-warning") {
                assert!(
                    !matches!(e.change, Change::Ignored { .. }),
                    "{name}: {:?}",
                    e.change
                );
                // A refund or dispute names the payment, not always the
                // account (Paddle adjustments carry no custom data).
                if !matches!(
                    e.change,
                    Change::Reversal { .. } | Change::PaymentLink { .. }
                ) {
                    assert_eq!(e.account_id.as_deref(), Some(ACCOUNT), "{name}");
                }
            }
            assert!(e.occurred_at.ends_with('Z'), "{name}: {}", e.occurred_at);
            let json = serde_json::to_value(&e).expect("serialises");
            assert_eq!(json["provider"], json!(provider.as_str()), "{name}");
            assert!(json["change"]["kind"].is_string(), "{name}: {json}");
        }
    }
}

/// The fixtures' names under `dir` (without `.json`), those in a
/// subdirectory (Stripe's per API version) as `<subdirectory>/<name>`.
fn fixture_names(dir: &str) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|entry| entry.ok())
    {
        let Some(file) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let sub = format!("{dir}/{file}");
            names.extend(
                fixture_names(&sub)
                    .into_iter()
                    .map(|n| format!("{file}/{n}")),
            );
        } else if let Some(name) = file.strip_suffix(".json") {
            names.push(name.to_owned());
        }
    }
    names
}
