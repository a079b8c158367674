//! What one webhook delivery costs the function before its one database
//! call: checking the signature over the raw body and reading the payload
//! into an event. Workers bill (and cap) CPU time per request, so this is
//! the number to keep small; `cargo bench -p edge-billing`.
//!
//! Each provider's largest documented fixture, plus a Stripe invoice grown
//! to 200 lines (large customers' invoices are the biggest bodies we take).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use edge_billing::event::Provider;
use edge_billing::{lemon_squeezy, paddle, signature, stripe};
use serde_json::Value;
use std::hint::black_box;

const SECRET: &str = "whsec_benchmark_secret";
const NOW: u64 = 1_757_505_700;

fn fixture(provider: Provider, name: &str) -> Vec<u8> {
    let path = format!(
        "{}/fixtures/{}/{name}.json",
        env!("CARGO_MANIFEST_DIR"),
        provider.as_str()
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// invoice.paid with its one line repeated to `lines` lines.
fn big_invoice(lines: usize) -> Vec<u8> {
    let mut event: Value =
        serde_json::from_slice(&fixture(Provider::Stripe, "invoice.paid")).expect("fixture");
    let line = event["data"]["object"]["lines"]["data"][0].clone();
    event["data"]["object"]["lines"]["data"] = Value::Array(vec![line; lines]);
    serde_json::to_vec(&event).expect("json")
}

fn delivery(c: &mut Criterion) {
    let secrets = signature::Secrets::new(vec![SECRET.to_owned()]);
    let cases = [
        (
            "stripe/invoice.paid",
            Provider::Stripe,
            fixture(Provider::Stripe, "invoice.paid"),
        ),
        (
            "stripe/customer.subscription.updated",
            Provider::Stripe,
            fixture(Provider::Stripe, "customer.subscription.updated"),
        ),
        (
            "stripe/invoice.paid x200 lines",
            Provider::Stripe,
            big_invoice(200),
        ),
        (
            "lemon-squeezy/subscription_updated",
            Provider::LemonSqueezy,
            fixture(Provider::LemonSqueezy, "subscription_updated"),
        ),
        (
            "paddle/transaction.completed",
            Provider::Paddle,
            fixture(Provider::Paddle, "transaction.completed.subscription"),
        ),
    ];
    let mut group = c.benchmark_group("verify and parse");
    for (name, provider, body) in &cases {
        let header = signature::sign(*provider, SECRET, NOW, body);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(*name, |b| {
            b.iter(|| {
                signature::verify(
                    *provider,
                    Some(&header),
                    black_box(body),
                    &secrets,
                    300,
                    NOW,
                )
                .expect("verifies");
                let event = match provider {
                    Provider::Stripe => stripe::parse(body),
                    Provider::LemonSqueezy => lemon_squeezy::parse(body),
                    Provider::Paddle => paddle::parse(body),
                };
                black_box(event.expect("parses"))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, delivery);
criterion_main!(benches);
