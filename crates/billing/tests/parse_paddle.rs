//! Paddle fixtures read by the parser, the resulting [`Event`] checked field
//! by field; malformed bodies.

mod common;

use common::*;
use edge_billing::event::*;
use serde_json::{json, Value};

// --- Paddle ---------------------------------------------------------------------------------

const PADDLE_SUB: &str = "sub_01k4c7acmepro0000000000000";
const PADDLE_CUSTOMER: &str = "ctm_01k4c7acmeowner00000000000";
const PADDLE_PRO: &str = "pri_01k4c7promonthly0000000000";
const PADDLE_PRO_PRODUCT: &str = "pro_01k4c7pro00000000000000000";
const PADDLE_BUSINESS: &str = "pri_01k4c7busmonthly0000000000";
const PADDLE_FIRST_TXN: &str = "txn_01k4c7acmeprofirst00000000";
const CREDITS_TXN: &str = "txn_01k4c7acmecredits000000000";
const CREDITS_PRICE: &str = "pri_01k4c7credits1000000000000";
const CREDITS_PRODUCT: &str = "pro_01k4c7credits0000000000000";
const FULL_REFUND: &str = "adj_01k5acmeprorefund000000000";
const PARTIAL_REFUND: &str = "adj_01k5acmecreditsrefund00000";

#[test]
fn paddle_one_off_transaction_is_an_order() {
    let e = event(Provider::Paddle, "transaction.completed.one-off");
    assert_eq!(e.provider, Provider::Paddle);
    assert_eq!(e.event_id, "evt_01k4ckacmecreditspaid00000");
    assert_eq!(
        e.notification_id.as_deref(),
        Some("ntf_01k4ckacmecreditspaid00000")
    );
    assert_eq!(e.api_version, None);
    assert_eq!(e.kind, "transaction.completed");
    assert_eq!(e.occurred_at, "2025-09-12T10:00:06.220914Z");
    assert_eq!(e.account_id.as_deref(), Some(ACCOUNT));
    assert_eq!(e.customer, customer(PADDLE_CUSTOMER, None));
    assert_eq!(
        e.change,
        Change::Order {
            order: Order {
                id: CREDITS_TXN.to_owned(),
                status: "succeeded".to_owned(),
                total_amount: Some(2000),
                currency: Some("USD".to_owned()),
                items: vec![OrderItem {
                    product_id: Some(CREDITS_PRODUCT.to_owned()),
                    variant_id: CREDITS_PRICE.to_owned(),
                    quantity: 2,
                    price_amount: Some(1000),
                }],
                payment_keys: vec![],
            }
        }
    );
}

fn line(price: &str, product: &str, quantity: i64, amount: i64, kind: LineKind) -> PaidLine {
    PaidLine {
        product_id: Some(product.to_owned()),
        variant_id: price.to_owned(),
        quantity,
        amount: Some(amount),
        kind,
    }
}

#[test]
fn paddle_subscription_transaction_is_a_payment() {
    let e = event(Provider::Paddle, "transaction.completed.subscription");
    assert_eq!(e.event_id, "evt_01k4c7acmeprofirstpaid0000");
    assert_eq!(
        e.notification_id.as_deref(),
        Some("ntf_01k4c7acmeprofirstpaid0000")
    );
    assert_eq!(e.occurred_at, "2025-09-10T12:00:12.814637Z");
    assert_eq!(e.account_id.as_deref(), Some(ACCOUNT));
    assert_eq!(
        e.change,
        Change::Payment {
            payment: Payment {
                subscription_id: PADDLE_SUB.to_owned(),
                reference: PADDLE_FIRST_TXN.to_owned(),
                billing_reason: Some("web".to_owned()),
                amount: 2900,
                currency: Some("USD".to_owned()),
                payment_keys: vec![],
                lines: Some(vec![line(
                    PADDLE_PRO,
                    PADDLE_PRO_PRODUCT,
                    1,
                    2900,
                    LineKind::Period
                )]),
            }
        }
    );
}

#[test]
fn paddle_renewal_pays_a_period() {
    let e = event(Provider::Paddle, "transaction.completed.renewal");
    let payment = payment_of(&e);
    assert_eq!(payment.reference, "txn_01k7acmeprorenewal00000000");
    assert_eq!(payment.subscription_id, PADDLE_SUB);
    assert_eq!(
        payment.billing_reason.as_deref(),
        Some("subscription_recurring")
    );
    assert_eq!(payment.amount, 2900);
    assert_eq!(
        payment.lines,
        Some(vec![line(
            PADDLE_PRO,
            PADDLE_PRO_PRODUCT,
            1,
            2900,
            LineKind::Period
        )])
    );
}

/// Issue 10, case 2: a trial's first transaction is a bill of 0, which
/// grants nothing; a paid one is its `details.totals.total`.
#[test]
fn paddle_payment_amount_is_the_total_and_a_trial_pays_nothing() {
    let paid = event(Provider::Paddle, "transaction.completed.subscription");
    assert_eq!(payment_of(&paid).amount, 2900);

    let trial = event(Provider::Paddle, "transaction.completed.trial");
    let payment = payment_of(&trial);
    assert_eq!(payment.subscription_id, "sub_01k4c7acmeprotrial00000000");
    assert_eq!(payment.amount, 0);
    assert_eq!(
        payment.lines,
        Some(vec![line(
            PADDLE_PRO,
            PADDLE_PRO_PRODUCT,
            1,
            0,
            LineKind::Period
        )])
    );

    // A 100 %-off discount: the total is what counts, not the prices.
    let discounted = edited(Provider::Paddle, "transaction.completed.renewal", |v| {
        v["data"]["details"]["totals"]["discount"] = json!("2900");
        v["data"]["details"]["totals"]["total"] = json!("0");
    });
    assert_eq!(payment_of(&discounted).amount, 0);
}

/// Issue 10, case 3: a prorated upgrade billed now (origin
/// subscription_update, items with `proration`) pays for no period: both the
/// credit for the old plan and the charge for the new one are prorations.
#[test]
fn paddle_prorated_upgrade_is_prorations() {
    let e = event(Provider::Paddle, "transaction.completed.upgrade");
    assert_eq!(e.account_id.as_deref(), Some(ACCOUNT));
    let payment = payment_of(&e);
    assert_eq!(payment.reference, "txn_01k5acmeproupgrade00000000");
    assert_eq!(
        payment.billing_reason.as_deref(),
        Some("subscription_update")
    );
    assert_eq!(payment.amount, 2500);
    assert_eq!(
        payment.lines,
        Some(vec![
            line(
                PADDLE_PRO,
                PADDLE_PRO_PRODUCT,
                -1,
                -1450,
                LineKind::Proration
            ),
            line(
                PADDLE_BUSINESS,
                "pro_01k4c7business000000000000",
                1,
                3950,
                LineKind::Proration
            ),
        ])
    );
}

/// Issue 10, case 3: only web, api and subscription_recurring transactions
/// bill periods; any other origin, or an item (or line item) with a
/// proration, is a proration.
#[test]
fn paddle_origin_and_item_proration_decide_the_line_kind() {
    let kinds = |edit: &dyn Fn(&mut Value)| {
        let e = edited(Provider::Paddle, "transaction.completed.renewal", |v| {
            edit(v)
        });
        line_kinds(payment_of(&e))
    };
    let period = Some(vec![LineKind::Period]);
    let proration = Some(vec![LineKind::Proration]);
    for origin in ["web", "api", "subscription_recurring"] {
        assert_eq!(
            kinds(&|v| v["data"]["origin"] = json!(origin)),
            period,
            "{origin}"
        );
    }
    for origin in [
        "subscription_update",
        "subscription_charge",
        "subscription_payment_method_change",
        "something_new",
    ] {
        assert_eq!(
            kinds(&|v| v["data"]["origin"] = json!(origin)),
            proration,
            "{origin}"
        );
    }
    assert_eq!(
        kinds(&|v| remove(&mut v["data"], "origin")),
        proration,
        "no origin"
    );
    assert_eq!(
        kinds(&|v| v["data"]["origin"] = Value::Null),
        proration,
        "null origin"
    );

    // A renewal carrying a change prorated to the next billing period: the
    // prorated item is a proration, whatever the origin.
    let prorated = json!({
        "rate": "0.25",
        "billing_period": {
            "starts_at": "2025-10-02T12:00:09.611250Z",
            "ends_at": "2025-10-10T12:00:09.611250Z"
        }
    });
    assert_eq!(
        kinds(&|v| v["data"]["items"][0]["proration"] = prorated.clone()),
        proration,
        "item proration"
    );
    assert_eq!(
        kinds(&|v| {
            remove(&mut v["data"]["items"][0], "proration");
            v["data"]["details"]["line_items"][0]["proration"] = prorated.clone();
        }),
        proration,
        "line item proration"
    );
    assert_eq!(
        kinds(&|v| remove(&mut v["data"]["items"][0], "proration")),
        period,
        "an absent proration is none"
    );
}

/// Issue 10, case 5: a one-time price bought with a subscription's
/// transaction is a one-time line (purchase credits, an order), whatever the
/// origin; the recurring price beside it is the period.
#[test]
fn paddle_one_time_price_beside_a_subscription_is_one_time() {
    let e = event(Provider::Paddle, "transaction.completed.with-one-time");
    let payment = payment_of(&e);
    assert_eq!(payment.subscription_id, PADDLE_SUB);
    assert_eq!(payment.reference, "txn_01k4c7acmeprowithpack00000");
    assert_eq!(payment.amount, 3900);
    assert_eq!(
        payment.lines,
        Some(vec![
            line(PADDLE_PRO, PADDLE_PRO_PRODUCT, 1, 2900, LineKind::Period),
            line(CREDITS_PRICE, CREDITS_PRODUCT, 1, 1000, LineKind::OneTime),
        ])
    );

    // A one-off charge on a subscription (origin subscription_charge).
    let charge = edited(
        Provider::Paddle,
        "transaction.completed.with-one-time",
        |v| {
            v["data"]["origin"] = json!("subscription_charge");
        },
    );
    assert_eq!(
        line_kinds(payment_of(&charge)),
        Some(vec![LineKind::Proration, LineKind::OneTime])
    );
}

#[test]
fn paddle_line_amounts_are_matched_by_price() {
    // line_items in another order than items: matched by price id.
    let swapped = edited(
        Provider::Paddle,
        "transaction.completed.with-one-time",
        |v| {
            let lines = v["data"]["details"]["line_items"]
                .as_array_mut()
                .expect("line_items");
            lines.reverse();
        },
    );
    let amounts: Vec<_> = payment_of(&swapped)
        .lines
        .iter()
        .flatten()
        .map(|l| (l.variant_id.as_str(), l.amount))
        .collect();
    assert_eq!(
        amounts,
        [(PADDLE_PRO, Some(2900)), (CREDITS_PRICE, Some(1000))]
    );

    // No line item for a price: its amount is unknown, not 0.
    let missing = edited(
        Provider::Paddle,
        "transaction.completed.with-one-time",
        |v| {
            v["data"]["details"]["line_items"] = json!([]);
        },
    );
    let payment = payment_of(&missing);
    assert!(payment.lines.iter().flatten().all(|l| l.amount.is_none()));
    assert_eq!(payment.amount, 3900);

    // The same price twice: each item takes its own line item.
    let twice = edited(Provider::Paddle, "transaction.completed.renewal", |v| {
        let item = v["data"]["items"][0].clone();
        v["data"]["items"].as_array_mut().expect("items").push(item);
        let mut line = v["data"]["details"]["line_items"][0].clone();
        line["totals"]["total"] = json!("100");
        v["data"]["details"]["line_items"]
            .as_array_mut()
            .expect("line_items")
            .push(line);
    });
    let amounts: Vec<_> = payment_of(&twice)
        .lines
        .iter()
        .flatten()
        .map(|l| l.amount)
        .collect();
    assert_eq!(amounts, [Some(2900), Some(100)]);
}

// --- Adjustments ----------------------------------------------------------------------------

fn paddle_reversal(
    id: &str,
    transaction: &str,
    kind: ReversalKind,
    amount: i64,
    status: ReversalStatus,
    provider_status: &str,
) -> Reversal {
    Reversal {
        id: id.to_owned(),
        payment_keys: vec![transaction.to_owned()],
        kind,
        amount,
        currency: Some("USD".to_owned()),
        status,
        cumulative: false,
        provider_status: Some(provider_status.to_owned()),
    }
}

/// Issue 10, case 10: a refund is pending until Paddle approves it, then
/// effective; its id is the adjustment's, the same in both events.
#[test]
fn paddle_refund_adjustments_are_reversals() {
    let pending = event(Provider::Paddle, "adjustment.created.refund-full-pending");
    assert_eq!(pending.kind, "adjustment.created");
    assert_eq!(pending.event_id, "evt_01k5acmeprorefundreq000000");
    assert_eq!(
        pending.notification_id.as_deref(),
        Some("ntf_01k5acmeprorefundreq000000")
    );
    assert_eq!(pending.occurred_at, "2025-09-15T09:20:41.771203Z");
    assert_eq!(pending.account_id, None, "adjustments carry no custom data");
    assert_eq!(pending.customer, customer(PADDLE_CUSTOMER, None));
    assert_eq!(
        reversal_of(&pending),
        &paddle_reversal(
            FULL_REFUND,
            PADDLE_FIRST_TXN,
            ReversalKind::Refund,
            2900,
            ReversalStatus::Pending,
            "pending_approval"
        )
    );
    let approved = event(Provider::Paddle, "adjustment.updated.refund-full-approved");
    assert_eq!(approved.kind, "adjustment.updated");
    assert_ne!(approved.event_id, pending.event_id);
    assert_eq!(
        reversal_of(&approved),
        &paddle_reversal(
            FULL_REFUND,
            PADDLE_FIRST_TXN,
            ReversalKind::Refund,
            2900,
            ReversalStatus::Effective,
            "approved"
        )
    );

    // A partial refund of the one-off purchase: its share, by the same rules.
    let partial = event(
        Provider::Paddle,
        "adjustment.created.refund-partial-pending",
    );
    assert_eq!(
        reversal_of(&partial),
        &paddle_reversal(
            PARTIAL_REFUND,
            CREDITS_TXN,
            ReversalKind::Refund,
            1000,
            ReversalStatus::Pending,
            "pending_approval"
        )
    );
    let partial = event(
        Provider::Paddle,
        "adjustment.updated.refund-partial-approved",
    );
    assert_eq!(
        reversal_of(&partial),
        &paddle_reversal(
            PARTIAL_REFUND,
            CREDITS_TXN,
            ReversalKind::Refund,
            1000,
            ReversalStatus::Effective,
            "approved"
        )
    );
}

/// Issue 10, case 10: a chargeback takes back, its reversal restores, a
/// warning moves no money.
#[test]
fn paddle_chargebacks_are_disputes() {
    let renewal = "txn_01k7acmeprorenewal00000000";
    let chargeback = event(Provider::Paddle, "adjustment.created.chargeback");
    assert_eq!(
        reversal_of(&chargeback),
        &paddle_reversal(
            "adj_01k7acmeprochargeback00000",
            renewal,
            ReversalKind::Dispute,
            2900,
            ReversalStatus::Effective,
            "approved"
        )
    );
    let reverse = event(Provider::Paddle, "adjustment.created.chargeback-reverse");
    assert_eq!(
        reversal_of(&reverse),
        &paddle_reversal(
            "adj_01k8acmeprochargebackrev00",
            renewal,
            ReversalKind::DisputeReversal,
            2900,
            ReversalStatus::Effective,
            "approved"
        )
    );
    let warning = event(Provider::Paddle, "adjustment.created.chargeback-warning");
    assert!(
        matches!(&warning.change, Change::Ignored { reason } if reason.contains("chargeback_warning")),
        "{:?}",
        warning.change
    );
    let warning_reversed = edited(
        Provider::Paddle,
        "adjustment.created.chargeback-warning",
        |v| {
            v["data"]["action"] = json!("chargeback_warning_reverse");
        },
    );
    assert!(matches!(warning_reversed.change, Change::Ignored { .. }));
}

#[test]
fn paddle_adjustment_actions_and_statuses() {
    let read = |action: &str, status: &str| {
        edited(
            Provider::Paddle,
            "adjustment.created.refund-full-pending",
            |v| {
                v["data"]["action"] = json!(action);
                v["data"]["status"] = json!(status);
            },
        )
    };
    let kind_status = |action: &str, status: &str| {
        let e = read(action, status);
        let r = reversal_of(&e);
        (r.kind, r.status)
    };
    use ReversalKind::*;
    use ReversalStatus::*;
    assert_eq!(kind_status("refund", "approved"), (Refund, Effective));
    assert_eq!(kind_status("credit", "approved"), (Refund, Effective));
    assert_eq!(
        kind_status("credit_reverse", "approved"),
        (RefundReversal, Effective)
    );
    assert_eq!(kind_status("chargeback", "approved"), (Dispute, Effective));
    assert_eq!(
        kind_status("chargeback_reverse", "approved"),
        (DisputeReversal, Effective)
    );
    assert_eq!(kind_status("refund", "pending_approval"), (Refund, Pending));
    assert_eq!(kind_status("refund", "rejected"), (Refund, Void));
    assert_eq!(
        kind_status("chargeback", "reversed"),
        (Dispute, Effective),
        "undone by its chargeback_reverse adjustment, which counts the other way"
    );

    // Words this parser does not know are not guessed at: recorded as failed.
    assert!(invalid_error(&read("write_off", "approved")).contains("write_off"));
    assert!(invalid_error(&read("refund", "on_hold")).contains("on_hold"));

    let negative = edited(
        Provider::Paddle,
        "adjustment.created.chargeback-reverse",
        |v| {
            v["data"]["totals"]["total"] = json!("-2900");
        },
    );
    assert_eq!(reversal_of(&negative).amount, 2900, "never negative");
    let bad = edited(Provider::Paddle, "adjustment.created.chargeback", |v| {
        v["data"]["totals"]["total"] = json!("29.00");
    });
    assert!(invalid_error(&bad).contains("totals.total"));
    let no_totals = edited(Provider::Paddle, "adjustment.created.chargeback", |v| {
        remove(&mut v["data"], "totals");
    });
    assert!(invalid_error(&no_totals).contains("totals"));
    let no_transaction = edited(Provider::Paddle, "adjustment.created.chargeback", |v| {
        remove(&mut v["data"], "transaction_id");
    });
    assert!(invalid_error(&no_transaction).contains("transaction_id"));
}

#[test]
fn paddle_subscription_lifecycle() {
    let created = event(Provider::Paddle, "subscription.created");
    assert_eq!(created.event_id, "evt_01k4c7acmeprocreated000000");
    assert_eq!(created.kind, "subscription.created");
    assert_eq!(created.occurred_at, "2025-09-10T12:00:11.480263Z");
    assert_eq!(created.account_id.as_deref(), Some(ACCOUNT));
    assert_eq!(created.customer, customer(PADDLE_CUSTOMER, None));
    assert_eq!(
        subscription_of(&created),
        &Subscription {
            id: PADDLE_SUB.to_owned(),
            status: "active".to_owned(),
            active: true,
            cancel_at_period_end: false,
            currency: Some("USD".to_owned()),
            period_starts_at: Some("2025-09-10T12:00:09.611250Z".to_owned()),
            period_ends_at: Some("2025-10-10T12:00:09.611250Z".to_owned()),
            trial_starts_at: None,
            trial_ends_at: None,
            items: vec![item(
                PADDLE_PRO,
                "pro_01k4c7pro00000000000000000",
                "flat",
                1,
                2900
            )],
        }
    );

    let updated = event(Provider::Paddle, "subscription.updated");
    assert_eq!(updated.event_id, "evt_01k5acmeprocancelsched0000");
    assert_eq!(updated.occurred_at, "2025-09-20T15:42:07.339108Z");
    let sub = subscription_of(&updated);
    assert_eq!(sub.status, "active");
    assert!(sub.cancel_at_period_end, "scheduled_change.action = cancel");

    let canceled = event(Provider::Paddle, "subscription.canceled");
    assert_eq!(canceled.event_id, "evt_01k7acmeprocanceled0000000");
    assert_eq!(canceled.occurred_at, "2025-10-10T12:00:14.086215Z");
    let sub = subscription_of(&canceled);
    assert_eq!(sub.status, "canceled");
    assert!(!sub.cancel_at_period_end);
    assert_eq!(
        sub.period_starts_at, None,
        "no current_billing_period once canceled"
    );
    assert_eq!(sub.period_ends_at, None);
}

#[test]
fn paddle_trials_and_seats() {
    let e = edited(Provider::Paddle, "subscription.created", |v| {
        let sub = &mut v["data"];
        sub["status"] = json!("trialing");
        sub["items"][0]["trial_dates"] = json!({
            "starts_at": "2025-09-10T12:00:09.611250Z",
            "ends_at": "2025-09-24T12:00:09.611250Z"
        });
        sub["items"][0]["price"]["custom_data"] = json!({"item_type": "per_seat"});
        sub["items"][0]["quantity"] = json!(4);
    });
    let sub = subscription_of(&e);
    assert_eq!(sub.status, "trialing");
    assert_eq!(
        sub.trial_starts_at.as_deref(),
        Some("2025-09-10T12:00:09.611250Z")
    );
    assert_eq!(
        sub.trial_ends_at.as_deref(),
        Some("2025-09-24T12:00:09.611250Z")
    );
    assert_eq!(
        (sub.items[0].item_type.as_str(), sub.items[0].quantity),
        ("per_seat", 4)
    );
}

#[test]
fn paddle_entities_lacking_what_we_need_are_invalid() {
    let bad_total = edited(Provider::Paddle, "transaction.completed.one-off", |v| {
        v["data"]["details"]["totals"]["total"] = json!("20.00");
    });
    assert!(invalid_error(&bad_total).contains("details.totals.total"));
    let no_total = edited(
        Provider::Paddle,
        "transaction.completed.subscription",
        |v| {
            remove(&mut v["data"]["details"], "totals");
        },
    );
    assert!(invalid_error(&no_total).contains("details.totals.total"));
    let bad_line = edited(
        Provider::Paddle,
        "transaction.completed.subscription",
        |v| {
            v["data"]["details"]["line_items"][0]["totals"]["total"] = json!("29.00");
        },
    );
    assert!(invalid_error(&bad_line).contains("line_items"));
    let no_items = edited(Provider::Paddle, "subscription.updated", |v| {
        remove(&mut v["data"], "items");
    });
    invalid_error(&no_items);
    let unknown = edited(Provider::Paddle, "subscription.updated", |v| {
        v["event_type"] = json!("subscription.paused");
    });
    assert!(matches!(unknown.change, Change::Ignored { .. }));
}

#[test]
fn paddle_malformed_bodies_are_400() {
    let p = Provider::Paddle;
    assert_bad_request(p, b"null", "null");
    assert_bad_request(
        p,
        br#"{"event_type": "subscription.created", "occurred_at": "2025-09-10T12:00:00Z"}"#,
        "no event_id",
    );
    assert_bad_request(
        p,
        br#"{"event_id": "evt_1", "occurred_at": "2025-09-10T12:00:00Z"}"#,
        "no event_type",
    );
    assert_bad_request(
        p,
        br#"{"event_id": "evt_1", "event_type": "subscription.created"}"#,
        "no occurred_at",
    );
    assert_bad_request(
        p,
        br#"{"event_id": "evt_1", "event_type": "subscription.created", "occurred_at": "now"}"#,
        "occurred_at not a time",
    );
}
