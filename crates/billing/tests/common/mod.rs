#![allow(dead_code)] // each test binary uses a part of it
//! What the parser tests of every provider share: fixtures, parsing, edits
//! and the expected parts of an [`Event`].

use edge_billing::event::{
    Change, Customer, Event, LineKind, Payment, Provider, Reversal, Subscription, SubscriptionItem,
};
use edge_billing::{lemon_squeezy, paddle, stripe};
use edge_core::Error;
use serde_json::Value;

pub const ACCOUNT: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";

pub fn fixture(provider: Provider, name: &str) -> String {
    let path = format!(
        "{}/fixtures/{}/{name}.json",
        env!("CARGO_MANIFEST_DIR"),
        provider.as_str()
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn parse(provider: Provider, body: &[u8]) -> Result<Event, Error> {
    match provider {
        Provider::Stripe => stripe::parse(body),
        Provider::LemonSqueezy => lemon_squeezy::parse(body),
        Provider::Paddle => paddle::parse(body),
    }
}

pub fn event(provider: Provider, name: &str) -> Event {
    parse(provider, fixture(provider, name).as_bytes())
        .unwrap_or_else(|e| panic!("{} {name}: {e}", provider.as_str()))
}

/// A fixture edited as JSON, then parsed.
pub fn edited(provider: Provider, name: &str, edit: impl FnOnce(&mut Value)) -> Event {
    let mut value: Value = serde_json::from_str(&fixture(provider, name)).expect("fixture is JSON");
    edit(&mut value);
    parse(provider, value.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("{} {name} (edited): {e}", provider.as_str()))
}

/// Removes `key` from the object `value`, as a provider omitting a field.
pub fn remove(value: &mut Value, key: &str) {
    if let Some(object) = value.as_object_mut() {
        object.remove(key);
    }
}

pub fn customer(id: &str, email: Option<&str>) -> Option<Customer> {
    Some(Customer {
        customer_id: id.to_owned(),
        email: email.map(str::to_owned),
    })
}

pub fn subscription_of(event: &Event) -> &Subscription {
    match &event.change {
        Change::Subscription { subscription } => subscription,
        other => panic!("{}: not a subscription: {other:?}", event.kind),
    }
}

pub fn payment_of(event: &Event) -> &Payment {
    match &event.change {
        Change::Payment { payment } => payment,
        other => panic!("{}: not a payment: {other:?}", event.kind),
    }
}

pub fn reversal_of(event: &Event) -> &Reversal {
    match &event.change {
        Change::Reversal { reversal } => reversal,
        other => panic!("{}: not a reversal: {other:?}", event.kind),
    }
}

/// The kinds of a payment's lines, in order; None when it has no lines (the
/// subscription's stored items).
pub fn line_kinds(payment: &Payment) -> Option<Vec<LineKind>> {
    payment
        .lines
        .as_ref()
        .map(|lines| lines.iter().map(|line| line.kind).collect())
}

pub fn invalid_error(event: &Event) -> &str {
    match &event.change {
        Change::Invalid { error } => error,
        other => panic!("{}: not invalid: {other:?}", event.kind),
    }
}

pub fn assert_bad_request(provider: Provider, body: &[u8], what: &str) {
    match parse(provider, body) {
        Err(error @ Error::BadRequest { .. }) => assert_eq!(error.status(), 400, "{what}"),
        other => panic!(
            "{} {what}: expected a 400, got {other:?}",
            provider.as_str()
        ),
    }
}

pub fn item(
    variant: &str,
    product: &str,
    kind: &str,
    quantity: i64,
    amount: i64,
) -> SubscriptionItem {
    SubscriptionItem {
        product_id: Some(product.to_owned()),
        variant_id: variant.to_owned(),
        item_type: kind.to_owned(),
        quantity,
        interval: Some("month".to_owned()),
        interval_count: Some(1),
        price_amount: Some(amount),
    }
}
