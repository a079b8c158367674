//! Lemon Squeezy fixtures read by the parser, the resulting [`Event`] checked
//! field by field; malformed bodies.

mod common;

use common::*;
use edge_billing::event::*;
use serde_json::{json, Value};

// --- Lemon Squeezy --------------------------------------------------------------------

const LS_SUB: &str = "1843920";
const LS_CUSTOMER: &str = "6195731";
const EMAIL: &str = "owner@example.com";

/// The event id's last part: 16 hex digits of the SHA-256 of the raw body.
fn digest(body: &[u8]) -> String {
    edge_core::sha256_hex(body)[..16].to_owned()
}

/// The id Lemon Squeezy's fixture `name` gets: its resource, `updated_at`
/// and the digest of its bytes.
fn ls_event_id(name: &str, resource: &str) -> String {
    format!(
        "{resource}:{}",
        digest(fixture(Provider::LemonSqueezy, name).as_bytes())
    )
}

#[test]
fn lemon_squeezy_order_created_is_an_order() {
    let e = event(Provider::LemonSqueezy, "order_created");
    assert_eq!(e.provider, Provider::LemonSqueezy);
    assert_eq!(
        e.event_id,
        ls_event_id(
            "order_created",
            "order_created:orders:5207284:2025-09-12T10:00:03.000000Z"
        )
    );
    assert_eq!((e.api_version, e.notification_id), (None, None));
    assert_eq!(e.kind, "order_created");
    assert_eq!(e.occurred_at, "2025-09-12T10:00:03Z");
    assert_eq!(e.account_id.as_deref(), Some(ACCOUNT));
    assert_eq!(e.customer, customer(LS_CUSTOMER, Some(EMAIL)));
    assert_eq!(
        e.change,
        Change::Order {
            order: Order {
                id: "5207284".to_owned(),
                status: "succeeded".to_owned(),
                total_amount: Some(1000),
                currency: Some("USD".to_owned()),
                items: vec![OrderItem {
                    product_id: Some("408842".to_owned()),
                    variant_id: "22222".to_owned(),
                    quantity: 1,
                    price_amount: Some(1000),
                }],
                payment_keys: vec![],
            }
        }
    );
}

#[test]
fn lemon_squeezy_order_statuses() {
    let status = |s: &str| {
        edited(Provider::LemonSqueezy, "order_created", |v| {
            v["data"]["attributes"]["status"] = json!(s);
        })
        .change
    };
    let order_status = |s: &str| match status(s) {
        Change::Order { order } => order.status,
        other => panic!("{s}: {other:?}"),
    };
    assert_eq!(order_status("paid"), "succeeded");
    assert_eq!(order_status("pending"), "pending");
    assert_eq!(order_status("failed"), "failed");
    assert!(matches!(status("refunded"), Change::Ignored { .. }));
    assert!(matches!(status("gone"), Change::Invalid { .. }));
}

#[test]
fn lemon_squeezy_subscription_created_on_trial() {
    let e = event(Provider::LemonSqueezy, "subscription_created");
    assert_eq!(
        e.event_id,
        ls_event_id(
            "subscription_created",
            "subscription_created:subscriptions:1843920:2025-09-10T12:00:09.000000Z"
        )
    );
    assert_eq!(e.occurred_at, "2025-09-10T12:00:09Z");
    assert_eq!(e.account_id.as_deref(), Some(ACCOUNT));
    assert_eq!(e.customer, customer(LS_CUSTOMER, Some(EMAIL)));
    assert_eq!(
        subscription_of(&e),
        &Subscription {
            id: LS_SUB.to_owned(),
            status: "trialing".to_owned(),
            active: true,
            cancel_at_period_end: false,
            currency: None,
            period_starts_at: None,
            period_ends_at: Some("2025-09-24T12:00:00Z".to_owned()),
            trial_starts_at: None,
            trial_ends_at: Some("2025-09-24T12:00:00Z".to_owned()),
            items: vec![SubscriptionItem {
                product_id: Some("408815".to_owned()),
                variant_id: "11111".to_owned(),
                item_type: "flat".to_owned(),
                quantity: 1,
                interval: None,
                interval_count: None,
                price_amount: None,
            }],
        }
    );
}

#[test]
fn lemon_squeezy_subscription_updated_cancelled_expired() {
    let updated = event(Provider::LemonSqueezy, "subscription_updated");
    assert_eq!(
        updated.event_id,
        ls_event_id(
            "subscription_updated",
            "subscription_updated:subscriptions:1843920:2025-09-24T12:00:09.000000Z"
        )
    );
    let sub = subscription_of(&updated);
    assert_eq!(sub.status, "active");
    assert_eq!(sub.period_ends_at.as_deref(), Some("2025-10-24T12:00:00Z"));
    assert!(!sub.cancel_at_period_end);

    let cancelled = event(Provider::LemonSqueezy, "subscription_cancelled");
    assert_eq!(cancelled.kind, "subscription_cancelled");
    assert_eq!(cancelled.occurred_at, "2025-10-05T09:30:00Z");
    let sub = subscription_of(&cancelled);
    assert_eq!(sub.status, "canceled");
    assert!(sub.active, "cancelled runs on to ends_at");
    assert!(sub.cancel_at_period_end);
    assert_eq!(
        sub.period_ends_at.as_deref(),
        Some("2025-10-24T12:00:00Z"),
        "ends_at"
    );

    let expired = event(Provider::LemonSqueezy, "subscription_expired");
    assert_eq!(expired.occurred_at, "2025-10-24T12:00:03Z");
    assert_eq!(subscription_of(&expired).status, "expired");
    assert!(!subscription_of(&expired).active);

    // Each change is its own event; a redelivery of the same body is not.
    let ids = [&updated, &cancelled, &expired].map(|e| e.event_id.clone());
    assert!(ids[0] != ids[1] && ids[1] != ids[2]);
    assert_eq!(
        event(Provider::LemonSqueezy, "subscription_expired").event_id,
        ids[2]
    );

    let usage = edited(Provider::LemonSqueezy, "subscription_updated", |v| {
        v["data"]["attributes"]["first_subscription_item"]["is_usage_based"] = json!(true);
        v["data"]["attributes"]["first_subscription_item"]["quantity"] = json!(0);
    });
    let item = &subscription_of(&usage).items[0];
    assert_eq!((item.item_type.as_str(), item.quantity), ("metered", 0));
}

#[test]
fn lemon_squeezy_payment_success_is_a_payment_of_the_stored_items() {
    let e = event(Provider::LemonSqueezy, "subscription_payment_success");
    assert_eq!(
        e.event_id,
        ls_event_id(
            "subscription_payment_success",
            "subscription_payment_success:subscription-invoices:4380652:2025-09-24T12:00:08.000000Z"
        )
    );
    assert_eq!(e.occurred_at, "2025-09-24T12:00:08Z");
    assert_eq!(e.account_id.as_deref(), Some(ACCOUNT));
    assert_eq!(e.customer, customer(LS_CUSTOMER, Some(EMAIL)));
    assert_eq!(
        e.change,
        Change::Payment {
            payment: Payment {
                subscription_id: LS_SUB.to_owned(),
                reference: "4380652".to_owned(),
                billing_reason: Some("renewal".to_owned()),
                amount: 2900,
                currency: Some("USD".to_owned()),
                payment_keys: vec![],
                lines: None,
            }
        }
    );
}

/// Issue 10, case 4: `billing_reason` decides what an invoice pays for. An
/// `updated` invoice (a plan change's proration) pays for no period: its
/// lines are an empty list, not the subscription's stored items.
#[test]
fn lemon_squeezy_billing_reason_updated_pays_for_no_period() {
    let e = event(
        Provider::LemonSqueezy,
        "subscription_payment_success.updated",
    );
    let payment = payment_of(&e);
    assert_eq!(payment.reference, "4391177");
    assert_eq!(payment.subscription_id, LS_SUB);
    assert_eq!(payment.billing_reason.as_deref(), Some("updated"));
    assert_eq!(payment.amount, 2500);
    assert_eq!(payment.lines, Some(vec![]));

    let reason = |reason: Value| {
        let e = edited(
            Provider::LemonSqueezy,
            "subscription_payment_success",
            |v| {
                v["data"]["attributes"]["billing_reason"] = reason;
            },
        );
        payment_of(&e).lines.clone()
    };
    assert_eq!(reason(json!("initial")), None, "a full period");
    assert_eq!(reason(json!("renewal")), None, "a full period");
    assert_eq!(reason(json!("updated")), Some(vec![]));
    assert_eq!(reason(json!("something_new")), Some(vec![]), "unknown");
    assert_eq!(reason(Value::Null), Some(vec![]), "none");
}

/// Issue 10, case 2: an invoice of 0 (a 100 %-off coupon, a trial) is a
/// payment of 0, which grants nothing.
#[test]
fn lemon_squeezy_payment_amount_is_the_total() {
    let free = event(Provider::LemonSqueezy, "subscription_payment_success.free");
    let payment = payment_of(&free);
    assert_eq!(payment.reference, "4371204");
    assert_eq!(payment.billing_reason.as_deref(), Some("initial"));
    assert_eq!(payment.amount, 0);
    assert_eq!(payment.lines, None);
    let paid = event(Provider::LemonSqueezy, "subscription_payment_success");
    assert_eq!(payment_of(&paid).amount, 2900);
}

/// Issue 10, case 7: two different updates of one subscription within the
/// same second are two events; a redelivery of the same bytes is one.
#[test]
fn lemon_squeezy_event_ids_tell_same_second_updates_apart() {
    let first = edited(Provider::LemonSqueezy, "subscription_updated", |v| {
        v["data"]["attributes"]["first_subscription_item"]["quantity"] = json!(2);
    });
    let second = edited(Provider::LemonSqueezy, "subscription_updated", |v| {
        v["data"]["attributes"]["first_subscription_item"]["quantity"] = json!(3);
    });
    assert_eq!(first.occurred_at, second.occurred_at, "the same second");
    assert_ne!(first.event_id, second.event_id);
    let prefix = "subscription_updated:subscriptions:1843920:2025-09-24T12:00:09.000000Z:";
    for e in [&first, &second] {
        let digest = e.event_id.strip_prefix(prefix).unwrap_or_default();
        assert_eq!(digest.len(), 16, "{}", e.event_id);
        assert!(
            digest.bytes().all(|b| b.is_ascii_hexdigit()),
            "{}",
            e.event_id
        );
    }

    // A redelivery: the same bytes, the same id.
    let body = fixture(Provider::LemonSqueezy, "subscription_updated");
    let ids = [0, 1].map(|_| {
        parse(Provider::LemonSqueezy, body.as_bytes())
            .map(|e| e.event_id)
            .unwrap_or_default()
    });
    assert!(!ids[0].is_empty());
    assert_eq!(ids[0], ids[1]);
    // Other bytes (here only the whitespace) are another event; the database
    // applies the same state again idempotently.
    let compact: Value = serde_json::from_str(&body).expect("fixture is JSON");
    let other = parse(Provider::LemonSqueezy, compact.to_string().as_bytes())
        .map(|e| e.event_id)
        .unwrap_or_default();
    assert_ne!(other, ids[0]);
}

/// Issue 10, case 8: `null` where a boolean is expected is false, not a
/// failed event.
#[test]
fn lemon_squeezy_null_booleans_are_false() {
    let e = edited(Provider::LemonSqueezy, "subscription_updated", |v| {
        v["data"]["attributes"]["cancelled"] = Value::Null;
        v["data"]["attributes"]["first_subscription_item"]["is_usage_based"] = Value::Null;
    });
    let sub = subscription_of(&e);
    assert!(!sub.cancel_at_period_end);
    assert!(sub.active);
    assert_eq!(sub.items[0].item_type, "flat");

    let absent = edited(Provider::LemonSqueezy, "subscription_updated", |v| {
        remove(&mut v["data"]["attributes"], "cancelled");
    });
    assert!(!subscription_of(&absent).cancel_at_period_end);

    let refund = edited(Provider::LemonSqueezy, "order_refunded.partial", |v| {
        v["data"]["attributes"]["refunded"] = Value::Null;
    });
    assert_eq!(reversal_of(&refund).amount, 400);
}

// --- Refunds --------------------------------------------------------------------------

fn ls_refund(of: &str, amount: i64, provider_status: &str) -> Reversal {
    Reversal {
        id: format!("total:{of}"),
        payment_keys: vec![of.to_owned()],
        kind: ReversalKind::Refund,
        amount,
        currency: Some("USD".to_owned()),
        status: ReversalStatus::Effective,
        cumulative: true,
        provider_status: Some(provider_status.to_owned()),
    }
}

/// Issue 10, case 10: an order's refunds are one running total, partial
/// then full, under one id.
#[test]
fn lemon_squeezy_order_refunded_is_a_cumulative_reversal() {
    let partial = event(Provider::LemonSqueezy, "order_refunded.partial");
    assert_eq!(partial.kind, "order_refunded");
    assert_eq!(
        partial.event_id,
        ls_event_id(
            "order_refunded.partial",
            "order_refunded:orders:5207284:2025-09-13T16:42:10.000000Z"
        )
    );
    assert_eq!(partial.occurred_at, "2025-09-13T16:42:10Z");
    assert_eq!(partial.account_id.as_deref(), Some(ACCOUNT));
    assert_eq!(partial.customer, customer(LS_CUSTOMER, Some(EMAIL)));
    assert_eq!(
        reversal_of(&partial),
        &ls_refund("5207284", 400, "partial_refund")
    );

    let full = event(Provider::LemonSqueezy, "order_refunded.full");
    assert_ne!(full.event_id, partial.event_id);
    assert_eq!(reversal_of(&full), &ls_refund("5207284", 1000, "refunded"));
}

#[test]
fn lemon_squeezy_subscription_payment_refunded_is_a_cumulative_reversal() {
    let e = event(Provider::LemonSqueezy, "subscription_payment_refunded");
    assert_eq!(e.kind, "subscription_payment_refunded");
    assert_eq!(
        e.event_id,
        ls_event_id(
            "subscription_payment_refunded",
            "subscription_payment_refunded:subscription-invoices:4380652:2025-09-26T08:15:31.000000Z"
        )
    );
    assert_eq!(e.account_id.as_deref(), Some(ACCOUNT));
    assert_eq!(reversal_of(&e), &ls_refund("4380652", 2900, "refunded"));
}

#[test]
fn lemon_squeezy_refund_amounts() {
    let refund = |edit: fn(&mut Value)| edited(Provider::LemonSqueezy, "order_refunded.full", edit);
    // Without refunded_amount, a full refund is the total ...
    let e = refund(|v| remove(&mut v["data"]["attributes"], "refunded_amount"));
    assert_eq!(reversal_of(&e).amount, 1000);
    // ... and anything else cannot be read.
    let e = refund(|v| {
        remove(&mut v["data"]["attributes"], "refunded_amount");
        v["data"]["attributes"]["refunded"] = json!(false);
    });
    assert!(invalid_error(&e).contains("refunded_amount"));
    let e = refund(|v| v["data"]["attributes"]["refunded_amount"] = json!("10.00"));
    assert!(invalid_error(&e).contains("order"), "{:?}", e.change);
}

#[test]
fn lemon_squeezy_custom_data_and_unknown_events() {
    let none = edited(Provider::LemonSqueezy, "subscription_updated", |v| {
        remove(&mut v["meta"], "custom_data");
    });
    assert_eq!(none.account_id, None);
    assert!(matches!(none.change, Change::Subscription { .. }));
    let empty = edited(Provider::LemonSqueezy, "subscription_updated", |v| {
        v["meta"]["custom_data"] = json!([]);
    });
    assert_eq!(
        empty.account_id, None,
        "an empty custom_data as PHP sends it"
    );
    let unreadable = edited(Provider::LemonSqueezy, "subscription_updated", |v| {
        v["meta"]["custom_data"] = json!({"account_id": {"nested": true}});
    });
    assert!(invalid_error(&unreadable).contains("custom_data"));

    let unknown = edited(Provider::LemonSqueezy, "subscription_updated", |v| {
        v["meta"]["event_name"] = json!("subscription_paused");
    });
    assert!(
        matches!(unknown.change, Change::Ignored { .. }),
        "{:?}",
        unknown.change
    );
    assert_eq!(unknown.account_id, None);
    assert!(unknown
        .event_id
        .starts_with("subscription_paused:subscriptions:1843920:"));
}

#[test]
fn lemon_squeezy_resources_lacking_what_we_need_are_invalid() {
    let no_variant = edited(Provider::LemonSqueezy, "subscription_created", |v| {
        remove(&mut v["data"]["attributes"], "variant_id");
    });
    assert!(invalid_error(&no_variant).contains("variant_id"));
    let no_item = edited(Provider::LemonSqueezy, "order_created", |v| {
        v["data"]["attributes"]["first_order_item"] = json!(null);
    });
    assert!(invalid_error(&no_item).contains("first_order_item"));
    let bad_time = edited(Provider::LemonSqueezy, "subscription_cancelled", |v| {
        v["data"]["attributes"]["ends_at"] = json!("next month");
    });
    assert!(invalid_error(&bad_time).contains("ends_at"));
    let no_subscription = edited(
        Provider::LemonSqueezy,
        "subscription_payment_success",
        |v| {
            remove(&mut v["data"]["attributes"], "subscription_id");
        },
    );
    invalid_error(&no_subscription);
    let no_total = edited(
        Provider::LemonSqueezy,
        "subscription_payment_success",
        |v| {
            v["data"]["attributes"]["total"] = Value::Null;
        },
    );
    assert!(invalid_error(&no_total).contains("total"));
    let bad_flag = edited(Provider::LemonSqueezy, "subscription_updated", |v| {
        v["data"]["attributes"]["cancelled"] = json!("no");
    });
    // Not a boolean, nor null: unreadable.
    assert!(
        invalid_error(&bad_flag).contains("subscription"),
        "{:?}",
        bad_flag.change
    );
}

#[test]
fn lemon_squeezy_malformed_bodies_are_400() {
    let p = Provider::LemonSqueezy;
    assert_bad_request(p, b"{", "not JSON");
    let body = |edit: fn(&mut Value)| {
        let mut v: Value =
            serde_json::from_str(&fixture(p, "subscription_updated")).expect("fixture is JSON");
        edit(&mut v);
        v.to_string()
    };
    assert_bad_request(
        p,
        body(|v| {
            remove(&mut v["meta"], "event_name");
        })
        .as_bytes(),
        "no event_name",
    );
    assert_bad_request(
        p,
        body(|v| {
            remove(&mut v["data"], "id");
        })
        .as_bytes(),
        "no data.id",
    );
    assert_bad_request(
        p,
        body(|v| {
            remove(&mut v["data"]["attributes"], "updated_at");
        })
        .as_bytes(),
        "no updated_at",
    );
    assert_bad_request(
        p,
        body(|v| v["data"]["attributes"]["updated_at"] = json!("soon")).as_bytes(),
        "updated_at not a time",
    );
    assert_bad_request(
        p,
        body(|v| v["data"]["type"] = json!("")).as_bytes(),
        "empty data.type",
    );
}
