//! Stripe fixtures read by the parser, the resulting [`Event`] checked field
//! by field, in every API version's shape (`fixtures/stripe/` is basil, its
//! subdirectories acacia, clover and dahlia); thin events; malformed bodies.

mod common;

use common::*;
use edge_billing::event::*;
use edge_billing::stripe;
use edge_core::Error;
use serde_json::{json, Value};

// --- Stripe ------------------------------------------------------------------------

const STRIPE_CUSTOMER: &str = "cus_T1AcmeOwner0001";
const STRIPE_SUB: &str = "sub_1S5AcmeProSubscription01";
const EMAIL: &str = "owner@example.com";
const CREDITS_PI: &str = "pi_3S5AcmeCreditsCard0001";
const CREDITS_CHARGE: &str = "ch_3S5AcmeCreditsCard0001";
const RENEWAL_PI: &str = "pi_3S5AcmeRenewalPay0001";
const RENEWAL_CHARGE: &str = "ch_3S5AcmeRenewalPay0001";
const FIRST_PI: &str = "pi_3S5AcmeFirstPay00001";
const FIRST_CHARGE: &str = "ch_3S5AcmeFirstPay00001";

/// The fixture directories, oldest API version first, and the version their
/// events are rendered in.
const VERSIONS: [(&str, &str); 4] = [
    ("2024-09-30.acacia/", "2024-09-30.acacia"),
    ("", "2025-08-27.basil"),
    ("2026-02-25.clover/", "2026-02-25.clover"),
    ("2026-07-29.dahlia/", "2026-07-29.dahlia"),
];

/// The same, from basil on (`invoice_payment.paid` exists since basil).
fn basil_and_later() -> impl Iterator<Item = (&'static str, &'static str)> {
    VERSIONS.into_iter().skip(1)
}

/// A fixture of one API version's directory.
fn versioned(dir: &str, name: &str) -> Event {
    event(Provider::Stripe, &format!("{dir}{name}"))
}

fn versioned_edited(dir: &str, name: &str, edit: impl FnOnce(&mut Value)) -> Event {
    edited(Provider::Stripe, &format!("{dir}{name}"), edit)
}

fn is_pre_basil(dir: &str) -> bool {
    dir.contains("acacia")
}

fn paid_line(variant: &str, product: &str, quantity: i64, amount: i64, kind: LineKind) -> PaidLine {
    PaidLine {
        product_id: Some(product.to_owned()),
        variant_id: variant.to_owned(),
        quantity,
        amount: Some(amount),
        kind,
    }
}

fn keys(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

/// The invoice's lines in an edited fixture.
fn lines(v: &mut Value) -> &mut Vec<Value> {
    v["data"]["object"]["lines"]["data"]
        .as_array_mut()
        .expect("the invoice has lines")
}

#[test]
fn stripe_checkout_in_subscription_mode_links_the_customer() {
    let e = event(Provider::Stripe, "checkout.session.completed.subscription");
    assert_eq!(e.provider, Provider::Stripe);
    assert_eq!(e.event_id, "evt_1S5AcmeCheckoutSubscr01");
    assert_eq!(e.kind, "checkout.session.completed");
    assert_eq!(e.occurred_at, "2025-09-10T12:00:05Z");
    assert_eq!(
        e.account_id.as_deref(),
        Some(ACCOUNT),
        "from client_reference_id"
    );
    assert_eq!(e.customer, customer(STRIPE_CUSTOMER, Some(EMAIL)));
    assert_eq!(e.change, Change::Customer);
}

#[test]
fn stripe_checkout_in_payment_mode_is_an_order_of_the_metadata_price() {
    let e = event(Provider::Stripe, "checkout.session.completed.payment");
    assert_eq!(e.event_id, "evt_1S5AcmeCheckoutCredits1");
    assert_eq!(e.occurred_at, "2025-09-12T10:00:04Z");
    assert_eq!(
        e.account_id.as_deref(),
        Some(ACCOUNT),
        "no client_reference_id: from metadata.account_id"
    );
    assert_eq!(e.customer, customer(STRIPE_CUSTOMER, Some(EMAIL)));
    assert_eq!(
        e.change,
        Change::Order {
            order: Order {
                id: "cs_test_a1AcmeCreditsCheckout0001".to_owned(),
                status: "succeeded".to_owned(),
                total_amount: Some(2000),
                currency: Some("USD".to_owned()),
                items: vec![OrderItem {
                    product_id: None,
                    variant_id: "price_credits_100".to_owned(),
                    quantity: 2,
                    price_amount: None,
                }],
                payment_keys: keys(&[CREDITS_PI]),
            }
        }
    );
    assert_eq!(e.api_version.as_deref(), Some("2025-08-27.basil"));
    assert_eq!(e.notification_id, None);
}

#[test]
fn stripe_async_payments_settle_the_order() {
    let order = |e: &Event| match &e.change {
        Change::Order { order } => order.clone(),
        other => panic!("not an order: {other:?}"),
    };
    let succeeded = event(Provider::Stripe, "checkout.session.async_payment_succeeded");
    assert_eq!(succeeded.event_id, "evt_1S5AcmeAsyncSucceeded01");
    assert_eq!(succeeded.kind, "checkout.session.async_payment_succeeded");
    assert_eq!(succeeded.occurred_at, "2025-09-15T08:00:12Z");
    assert_eq!(succeeded.account_id.as_deref(), Some(ACCOUNT));
    let paid = order(&succeeded);
    assert_eq!(paid.id, "cs_test_a1AcmeCreditsBankDebit0001");
    assert_eq!(paid.status, "succeeded");
    assert_eq!(paid.total_amount, Some(1000));
    assert_eq!(paid.items.len(), 1);
    assert_eq!(paid.items[0].variant_id, "price_credits_100");
    assert_eq!(paid.items[0].quantity, 1, "no metadata.quantity: one");

    let failed = event(Provider::Stripe, "checkout.session.async_payment_failed");
    assert_eq!(failed.event_id, "evt_1S5AcmeAsyncFailed0001");
    let unpaid = order(&failed);
    assert_eq!(unpaid.id, paid.id, "the same session");
    assert_eq!(unpaid.status, "failed");

    // The same session when it completed, its bank debit not yet cleared.
    let completed = edited(
        Provider::Stripe,
        "checkout.session.async_payment_failed",
        |v| {
            v["type"] = json!("checkout.session.completed");
        },
    );
    assert_eq!(order(&completed).status, "pending");
    let free = edited(
        Provider::Stripe,
        "checkout.session.completed.payment",
        |v| {
            v["data"]["object"]["payment_status"] = json!("no_payment_required");
        },
    );
    assert_eq!(order(&free).status, "succeeded");
}

#[test]
fn stripe_subscription_created() {
    let e = event(Provider::Stripe, "customer.subscription.created");
    assert_eq!(e.event_id, "evt_1S5AcmeSubCreated00001");
    assert_eq!(e.kind, "customer.subscription.created");
    assert_eq!(e.occurred_at, "2025-09-10T12:00:03Z");
    assert_eq!(
        e.account_id.as_deref(),
        Some(ACCOUNT),
        "from metadata.account_id"
    );
    assert_eq!(e.customer, customer(STRIPE_CUSTOMER, None));
    assert_eq!(
        subscription_of(&e),
        &Subscription {
            id: STRIPE_SUB.to_owned(),
            status: "active".to_owned(),
            active: true,
            cancel_at_period_end: false,
            currency: Some("USD".to_owned()),
            // basil: from the first item.
            period_starts_at: Some("2025-09-10T12:00:02Z".to_owned()),
            period_ends_at: Some("2025-10-10T12:00:02Z".to_owned()),
            trial_starts_at: None,
            trial_ends_at: None,
            items: vec![item("price_pro_monthly", "prod_pro", "flat", 1, 2900)],
        }
    );
}

#[test]
fn stripe_subscription_updated_to_seats_and_usage() {
    let e = event(Provider::Stripe, "customer.subscription.updated");
    assert_eq!(e.event_id, "evt_1S5AcmeSubUpdated00001");
    assert_eq!(e.occurred_at, "2025-10-15T09:30:00Z");
    let sub = subscription_of(&e);
    assert_eq!(sub.status, "active");
    assert_eq!(
        sub.period_starts_at.as_deref(),
        Some("2025-10-10T12:00:02Z")
    );
    assert_eq!(sub.period_ends_at.as_deref(), Some("2025-11-10T12:00:02Z"));
    assert_eq!(
        sub.items,
        vec![
            item("price_team_monthly", "prod_team", "per_seat", 3, 1200),
            item("price_api_calls_metered", "prod_api_calls", "metered", 1, 2),
        ]
    );
}

#[test]
fn stripe_subscription_deleted_is_canceled() {
    let e = event(Provider::Stripe, "customer.subscription.deleted");
    assert_eq!(e.event_id, "evt_1S5AcmeSubDeleted00001");
    assert_eq!(e.occurred_at, "2025-10-20T16:45:00Z");
    assert_eq!(e.account_id.as_deref(), Some(ACCOUNT));
    let sub = subscription_of(&e);
    assert_eq!(sub.id, STRIPE_SUB);
    assert_eq!(sub.status, "canceled");
    assert!(!sub.active, "a canceled subscription gives no access");
    assert!(!sub.cancel_at_period_end);
    assert_eq!(sub.items.len(), 2);
}

#[test]
fn stripe_scheduled_cancellations_and_trials() {
    let at_period_end = edited(Provider::Stripe, "customer.subscription.updated", |v| {
        v["data"]["object"]["cancel_at_period_end"] = json!(true);
    });
    assert!(subscription_of(&at_period_end).cancel_at_period_end);
    let cancel_at = edited(Provider::Stripe, "customer.subscription.updated", |v| {
        v["data"]["object"]["cancel_at"] = json!(1_762_776_002);
    });
    assert!(
        subscription_of(&cancel_at).cancel_at_period_end,
        "cancel_at set"
    );

    let trialing = edited(Provider::Stripe, "customer.subscription.created", |v| {
        let sub = &mut v["data"]["object"];
        sub["status"] = json!("trialing");
        sub["trial_start"] = json!(1_757_505_602);
        sub["trial_end"] = json!(1_758_715_202);
    });
    let sub = subscription_of(&trialing);
    assert_eq!(sub.status, "trialing");
    assert_eq!(sub.trial_starts_at.as_deref(), Some("2025-09-10T12:00:02Z"));
    assert_eq!(sub.trial_ends_at.as_deref(), Some("2025-09-24T12:00:02Z"));
}

#[test]
fn stripe_subscription_before_basil_and_expanded() {
    // Before 2025-03-31.basil the period is on the subscription; a product
    // (and the customer) may be expanded objects.
    let e = edited(Provider::Stripe, "customer.subscription.created", |v| {
        let sub = &mut v["data"]["object"];
        sub["current_period_start"] = json!(1_700_000_000);
        sub["current_period_end"] = json!(1_702_592_000);
        sub["customer"] = json!({"id": STRIPE_CUSTOMER, "object": "customer", "email": EMAIL});
        let item = &mut sub["items"]["data"][0];
        remove(item, "current_period_start");
        remove(item, "current_period_end");
        item["price"]["product"] = json!({"id": "prod_pro", "object": "product", "name": "Pro"});
    });
    assert_eq!(e.customer, customer(STRIPE_CUSTOMER, Some(EMAIL)));
    let sub = subscription_of(&e);
    assert_eq!(
        sub.period_starts_at.as_deref(),
        Some("2023-11-14T22:13:20Z")
    );
    assert_eq!(sub.period_ends_at.as_deref(), Some("2023-12-14T22:13:20Z"));
    assert_eq!(sub.items[0].product_id.as_deref(), Some("prod_pro"));
}

#[test]
fn stripe_invoice_paid_is_a_payment_of_its_lines() {
    let e = event(Provider::Stripe, "invoice.paid");
    assert_eq!(e.event_id, "evt_1S5AcmeInvoicePaid00001");
    assert_eq!(e.kind, "invoice.paid");
    assert_eq!(e.occurred_at, "2025-10-11T13:05:04Z");
    assert_eq!(e.api_version.as_deref(), Some("2025-08-27.basil"));
    assert_eq!(
        e.account_id.as_deref(),
        Some(ACCOUNT),
        "from parent.subscription_details.metadata"
    );
    assert_eq!(e.customer, customer(STRIPE_CUSTOMER, Some(EMAIL)));
    assert_eq!(
        e.change,
        Change::Payment {
            payment: Payment {
                subscription_id: STRIPE_SUB.to_owned(),
                reference: "in_1S5AcmeRenewalInvoice01".to_owned(),
                billing_reason: Some("subscription_cycle".to_owned()),
                amount: 2900,
                currency: Some("USD".to_owned()),
                // basil: the invoice no longer names its payment intent
                // (invoice_payment.paid does).
                payment_keys: Vec::new(),
                lines: Some(vec![paid_line(
                    "price_pro_monthly",
                    "prod_pro",
                    1,
                    2900,
                    LineKind::Period
                )]),
            }
        }
    );
}

#[test]
fn stripe_renewal_per_api_version() {
    for (dir, version) in VERSIONS {
        let e = versioned(dir, "invoice.paid");
        assert_eq!(e.api_version.as_deref(), Some(version), "{dir}");
        assert_eq!(e.account_id.as_deref(), Some(ACCOUNT), "{dir}");
        let payment = payment_of(&e);
        assert_eq!(payment.subscription_id, STRIPE_SUB, "{dir}");
        assert_eq!(payment.reference, "in_1S5AcmeRenewalInvoice01", "{dir}");
        assert_eq!(payment.amount, 2900, "{dir}");
        assert_eq!(payment.currency.as_deref(), Some("USD"), "{dir}");
        assert_eq!(
            payment.billing_reason.as_deref(),
            Some("subscription_cycle"),
            "{dir}"
        );
        assert_eq!(
            payment.lines,
            Some(vec![paid_line(
                "price_pro_monthly",
                "prod_pro",
                1,
                2900,
                LineKind::Period
            )]),
            "{dir}"
        );
        // Before basil the invoice names its payment intent and charge.
        let expected = if is_pre_basil(dir) {
            keys(&[RENEWAL_PI, RENEWAL_CHARGE])
        } else {
            Vec::new()
        };
        assert_eq!(payment.payment_keys, expected, "{dir}");
    }
}

/// Issue 10, case 1. Since basil a plan change's prorations are invoice
/// items (`parent.type = invoice_item_details`, the flag at
/// `parent.invoice_item_details.proration`); the old parser read only
/// `parent.subscription_item_details.proration` and took both lines for
/// periods paid, granting renewal credits for each.
#[test]
fn stripe_plan_change_prorations_are_proration_lines_per_api_version() {
    for (dir, _) in VERSIONS {
        let e = versioned(dir, "invoice.paid.plan_change");
        let payment = payment_of(&e);
        assert_eq!(payment.reference, "in_1S5AcmePlanChangeInv01", "{dir}");
        assert_eq!(
            payment.billing_reason.as_deref(),
            Some("subscription_update"),
            "{dir}"
        );
        assert_eq!(payment.amount, 589, "{dir}: what the change cost");
        assert_eq!(
            payment.lines,
            Some(vec![
                // The credit for the unused time on Pro...
                paid_line(
                    "price_pro_monthly",
                    "prod_pro",
                    1,
                    -2442,
                    LineKind::Proration
                ),
                // ...and the charge for the rest of the period on Team.
                paid_line(
                    "price_team_monthly",
                    "prod_team",
                    3,
                    3031,
                    LineKind::Proration
                ),
            ]),
            "{dir}"
        );
        let expected = if is_pre_basil(dir) {
            keys(&["pi_3S5AcmePlanChange0001", "ch_3S5AcmePlanChange0001"])
        } else {
            Vec::new()
        };
        assert_eq!(payment.payment_keys, expected, "{dir}");
    }
}

#[test]
fn stripe_proration_flag_is_read_from_the_parent_its_type_names() {
    // A proration of a subscription item (basil): the flag on
    // subscription_item_details.
    let e = edited(Provider::Stripe, "invoice.paid", |v| {
        let parent = &mut lines(v)[0]["parent"];
        parent["subscription_item_details"]["proration"] = json!(true);
    });
    assert_eq!(line_kinds(payment_of(&e)), Some(vec![LineKind::Proration]));

    // Both details present, as in Stripe's own fixtures: `type` says which
    // one applies.
    let e = edited(Provider::Stripe, "invoice.paid.plan_change", |v| {
        for line in lines(v) {
            line["parent"]["subscription_item_details"] = json!({
                "invoice_item": null, "proration": false,
                "proration_details": {"credited_items": null},
                "subscription": STRIPE_SUB, "subscription_item": "si_T1AcmePro0001"
            });
        }
    });
    assert_eq!(
        line_kinds(payment_of(&e)),
        Some(vec![LineKind::Proration, LineKind::Proration])
    );
    let e = edited(Provider::Stripe, "invoice.paid", |v| {
        let parent = &mut lines(v)[0]["parent"];
        parent["invoice_item_details"] = json!({"invoice_item": "ii_1", "proration": true});
    });
    assert_eq!(
        line_kinds(payment_of(&e)),
        Some(vec![LineKind::Period]),
        "type subscription_item_details: invoice_item_details is not read"
    );

    // A line from a source the parser does not know grants nothing.
    let e = edited(Provider::Stripe, "invoice.paid", |v| {
        lines(v)[0]["parent"]["type"] = json!("rate_card_subscription_details");
    });
    assert_eq!(line_kinds(payment_of(&e)), Some(vec![LineKind::Proration]));
    let e = edited(Provider::Stripe, "2024-09-30.acacia/invoice.paid", |v| {
        remove(&mut lines(v)[0], "type");
    });
    assert_eq!(line_kinds(payment_of(&e)), Some(vec![LineKind::Proration]));
}

/// Issue 10, case 2: a trial's first invoice and a 100 %-off coupon's carry
/// amount 0 (the invoice's `total`), whatever their lines say.
#[test]
fn stripe_free_invoices_carry_amount_zero_per_api_version() {
    for (dir, _) in VERSIONS {
        let trial = versioned(dir, "invoice.paid.trial");
        let payment = payment_of(&trial);
        assert_eq!(payment.reference, "in_1S5AcmeTrialInvoice0001", "{dir}");
        assert_eq!(payment.amount, 0, "{dir}");
        assert_eq!(
            payment.billing_reason.as_deref(),
            Some("subscription_create"),
            "{dir}"
        );
        assert_eq!(
            payment.lines,
            Some(vec![paid_line(
                "price_pro_monthly",
                "prod_pro",
                1,
                0,
                LineKind::Period
            )]),
            "{dir}"
        );
        assert_eq!(
            payment.payment_keys,
            Vec::<String>::new(),
            "{dir}: nothing charged"
        );

        let coupon = versioned(dir, "invoice.paid.coupon");
        let payment = payment_of(&coupon);
        assert_eq!(payment.reference, "in_1S5AcmeCouponInvoice001", "{dir}");
        assert_eq!(payment.amount, 0, "{dir}: the coupon took it all");
        assert_eq!(
            payment.billing_reason.as_deref(),
            Some("subscription_cycle"),
            "{dir}"
        );
        // The line's amount is before the discount; the total is what counts.
        assert_eq!(
            payment.lines,
            Some(vec![paid_line(
                "price_pro_monthly",
                "prod_pro",
                1,
                2900,
                LineKind::Period
            )]),
            "{dir}"
        );
    }
}

/// Issue 10, case 5: a one-time price bought in a subscription checkout is an
/// invoice item on the first invoice, beside the subscription's line.
#[test]
fn stripe_one_time_line_beside_the_subscription_per_api_version() {
    for (dir, _) in VERSIONS {
        let e = versioned(dir, "invoice.paid.first_with_one_time");
        assert_eq!(e.account_id.as_deref(), Some(ACCOUNT), "{dir}");
        let payment = payment_of(&e);
        assert_eq!(payment.reference, "in_1S5AcmeFirstInvoice0001", "{dir}");
        assert_eq!(payment.amount, 7800, "{dir}");
        assert_eq!(
            payment.billing_reason.as_deref(),
            Some("subscription_create"),
            "{dir}"
        );
        assert_eq!(
            payment.lines,
            Some(vec![
                paid_line(
                    "price_onboarding_pack",
                    "prod_onboarding",
                    1,
                    4900,
                    LineKind::OneTime
                ),
                paid_line("price_pro_monthly", "prod_pro", 1, 2900, LineKind::Period),
            ]),
            "{dir}"
        );
        let expected = if is_pre_basil(dir) {
            keys(&[FIRST_PI, FIRST_CHARGE])
        } else {
            Vec::new()
        };
        assert_eq!(payment.payment_keys, expected, "{dir}");
    }
}

#[test]
fn stripe_invoice_fields_before_basil_may_be_expanded() {
    let e = edited(Provider::Stripe, "2024-09-30.acacia/invoice.paid", |v| {
        let invoice = &mut v["data"]["object"];
        invoice["payment_intent"] = json!({"id": RENEWAL_PI, "object": "payment_intent"});
        invoice["charge"] = json!(null);
        invoice["subscription"] = json!({"id": STRIPE_SUB, "object": "subscription"});
        lines(v)[0]["quantity"] = json!(2);
    });
    let payment = payment_of(&e);
    assert_eq!(payment.subscription_id, STRIPE_SUB);
    assert_eq!(
        payment.payment_keys,
        keys(&[RENEWAL_PI]),
        "null charge left out"
    );
    assert_eq!(
        payment.lines.as_ref().map(|lines| lines[0].quantity),
        Some(2)
    );
}

#[test]
fn stripe_line_quantity_from_the_decimal_when_only_it_is_sent() {
    // dahlia deprecated `quantity` for `quantity_decimal`; Stripe fills
    // `quantity` with the decimal truncated, and so does the parser when the
    // integer is missing.
    let e = edited(
        Provider::Stripe,
        "2026-07-29.dahlia/invoice.paid.plan_change",
        |v| {
            let team = &mut lines(v)[1];
            remove(team, "quantity");
            team["quantity_decimal"] = json!("3.75");
        },
    );
    let quantities: Option<Vec<i64>> = payment_of(&e)
        .lines
        .as_ref()
        .map(|lines| lines.iter().map(|line| line.quantity).collect());
    assert_eq!(quantities, Some(vec![1, 3]));
}

#[test]
fn stripe_invoice_without_total_is_invalid() {
    let e = edited(Provider::Stripe, "invoice.paid", |v| {
        remove(&mut v["data"]["object"], "total");
    });
    assert!(invalid_error(&e).contains("total"), "{:?}", e.change);
}

#[test]
fn stripe_invoice_without_subscription_is_ignored() {
    let e = edited(Provider::Stripe, "invoice.paid", |v| {
        v["data"]["object"]["parent"] = json!(null);
    });
    assert!(matches!(e.change, Change::Ignored { .. }), "{:?}", e.change);
    assert_eq!(e.event_id, "evt_1S5AcmeInvoicePaid00001");
}

#[test]
fn stripe_payment_failed_is_ignored_with_its_reason() {
    let e = event(Provider::Stripe, "invoice.payment_failed");
    assert_eq!(e.event_id, "evt_1S5AcmeInvoiceFailed001");
    assert_eq!(e.occurred_at, "2025-10-10T13:00:10Z");
    assert_eq!(
        e.change,
        Change::Ignored {
            reason: "the subscription's state arrives with customer.subscription.updated"
                .to_owned()
        }
    );
}

#[test]
fn stripe_unknown_types_are_ignored() {
    let body = json!({
        "id": "evt_1S5AcmeCustomerUpdated1", "object": "event", "type": "customer.updated",
        "created": 1_757_505_600, "data": {"object": {"id": STRIPE_CUSTOMER}}
    });
    let e = stripe::parse(body.to_string().as_bytes()).expect("readable");
    assert!(matches!(e.change, Change::Ignored { .. }), "{:?}", e.change);
    assert_eq!(e.account_id, None);
    assert_eq!(e.occurred_at, "2025-09-10T12:00:00Z");
}

#[test]
fn stripe_objects_lacking_what_we_need_are_invalid() {
    let no_price = edited(
        Provider::Stripe,
        "checkout.session.completed.payment",
        |v| {
            v["data"]["object"]["metadata"] = json!({"account_id": ACCOUNT});
        },
    );
    assert!(invalid_error(&no_price).contains("metadata.price_id"));
    assert_eq!(
        no_price.event_id, "evt_1S5AcmeCheckoutCredits1",
        "still recorded by id"
    );

    let bad_quantity = edited(
        Provider::Stripe,
        "checkout.session.completed.payment",
        |v| {
            v["data"]["object"]["metadata"]["quantity"] = json!("two");
        },
    );
    assert!(invalid_error(&bad_quantity).contains("quantity"));

    let no_customer = edited(
        Provider::Stripe,
        "checkout.session.completed.subscription",
        |v| {
            v["data"]["object"]["customer"] = json!(null);
        },
    );
    assert!(invalid_error(&no_customer).contains("no customer"));

    let no_items = edited(Provider::Stripe, "customer.subscription.updated", |v| {
        remove(&mut v["data"]["object"], "items");
    });
    assert!(invalid_error(&no_items).contains("subscription"));

    let no_object = edited(Provider::Stripe, "invoice.paid", |v| {
        remove(v, "data");
    });
    invalid_error(&no_object);
}

#[test]
fn stripe_setup_mode_is_ignored() {
    let e = edited(
        Provider::Stripe,
        "checkout.session.completed.subscription",
        |v| {
            v["data"]["object"]["mode"] = json!("setup");
        },
    );
    assert!(matches!(e.change, Change::Ignored { .. }), "{:?}", e.change);
}

#[test]
fn stripe_malformed_bodies_are_400() {
    let p = Provider::Stripe;
    assert_bad_request(p, b"", "empty");
    assert_bad_request(p, b"not json", "not JSON");
    assert_bad_request(p, b"[1, 2]", "not an object");
    assert_bad_request(p, br#"{"type": "invoice.paid", "created": 1}"#, "no id");
    assert_bad_request(p, b"[]", "an empty array");
    assert_bad_request(p, br#"{"id": "evt_1", "created": 1}"#, "no type");
    assert_bad_request(
        p,
        br#"{"id": "evt_1", "type": "invoice.paid"}"#,
        "no created",
    );
    assert_bad_request(
        p,
        br#"{"id": "", "type": "invoice.paid", "created": 1}"#,
        "empty id",
    );
    assert_bad_request(
        p,
        br#"{"id": "evt_1", "type": "invoice.paid", "created": "yesterday"}"#,
        "created not a number",
    );
}

// --- API versions, payment links ----------------------------------------------------------

#[test]
fn stripe_api_version_is_kept() {
    for (dir, version) in VERSIONS {
        for name in [
            "invoice.paid",
            "charge.refunded.partial",
            "charge.dispute.created",
        ] {
            let e = versioned(dir, name);
            assert_eq!(e.api_version.as_deref(), Some(version), "{dir}{name}");
            assert_eq!(e.notification_id, None, "{dir}{name}");
        }
    }
    let none = edited(Provider::Stripe, "invoice.paid", |v| {
        remove(v, "api_version");
    });
    assert_eq!(none.api_version, None);
}

#[test]
fn stripe_checkout_and_subscriptions_before_basil() {
    let dir = "2024-09-30.acacia/";
    let order = versioned(dir, "checkout.session.completed.payment");
    assert_eq!(order.account_id.as_deref(), Some(ACCOUNT));
    match &order.change {
        Change::Order { order } => {
            assert_eq!(order.id, "cs_test_a1AcmeCreditsCheckout0001");
            assert_eq!(order.payment_keys, keys(&[CREDITS_PI]));
        }
        other => panic!("not an order: {other:?}"),
    }
    let bank = versioned(dir, "checkout.session.async_payment_succeeded");
    match &bank.change {
        Change::Order { order } => {
            assert_eq!(order.status, "succeeded");
            assert_eq!(order.payment_keys, keys(&["pi_3S5AcmeCreditsBank0001"]));
        }
        other => panic!("not an order: {other:?}"),
    }
    assert_eq!(
        versioned(dir, "checkout.session.completed.subscription").change,
        Change::Customer
    );

    // The period on the subscription itself, not on its items.
    let created = versioned(dir, "customer.subscription.created");
    assert_eq!(created.api_version.as_deref(), Some("2024-09-30.acacia"));
    assert_eq!(
        subscription_of(&created),
        subscription_of(&event(Provider::Stripe, "customer.subscription.created")),
        "the same subscription in both shapes"
    );
    let updated = versioned(dir, "customer.subscription.updated");
    let sub = subscription_of(&updated);
    assert_eq!(
        sub.period_starts_at.as_deref(),
        Some("2025-10-10T12:00:02Z")
    );
    assert_eq!(sub.period_ends_at.as_deref(), Some("2025-11-10T12:00:02Z"));
    assert_eq!(sub.items.len(), 2);
    assert_eq!(
        subscription_of(&versioned(dir, "customer.subscription.deleted")).status,
        "canceled"
    );
    assert!(matches!(
        versioned(dir, "invoice.payment_failed").change,
        Change::Ignored { .. }
    ));
}

#[test]
fn stripe_invoice_payment_paid_links_the_invoice_to_its_payment() {
    for (dir, version) in basil_and_later() {
        let e = versioned(dir, "invoice_payment.paid");
        assert_eq!(e.kind, "invoice_payment.paid", "{dir}");
        assert_eq!(e.api_version.as_deref(), Some(version), "{dir}");
        assert_eq!(e.account_id, None, "{dir}");
        assert_eq!(
            e.change,
            Change::PaymentLink {
                link: PaymentLink {
                    reference: "in_1S5AcmeRenewalInvoice01".to_owned(),
                    payment_keys: keys(&[RENEWAL_PI]),
                }
            },
            "{dir}"
        );
        let first = versioned(dir, "invoice_payment.paid.first");
        assert_eq!(
            first.change,
            Change::PaymentLink {
                link: PaymentLink {
                    reference: "in_1S5AcmeFirstInvoice0001".to_owned(),
                    payment_keys: keys(&[FIRST_PI]),
                }
            },
            "{dir}"
        );
    }
    // A charge without a payment intent (type charge); an expanded invoice.
    let e = edited(Provider::Stripe, "invoice_payment.paid", |v| {
        let paid = &mut v["data"]["object"];
        paid["payment"] =
            json!({"type": "charge", "charge": RENEWAL_CHARGE, "payment_intent": null});
        paid["invoice"] = json!({"id": "in_1S5AcmeRenewalInvoice01", "object": "invoice"});
    });
    assert_eq!(
        e.change,
        Change::PaymentLink {
            link: PaymentLink {
                reference: "in_1S5AcmeRenewalInvoice01".to_owned(),
                payment_keys: keys(&[RENEWAL_CHARGE]),
            }
        }
    );
    // A payment made outside Stripe: nothing a refund could name.
    let e = edited(Provider::Stripe, "invoice_payment.paid", |v| {
        v["data"]["object"]["payment"] =
            json!({"type": "payment_record", "payment_record": "prec_1"});
    });
    assert!(matches!(e.change, Change::Ignored { .. }), "{:?}", e.change);
}

// --- null booleans --------------------------------------------------------------------------

/// Issue 10, case 8: `null` where a boolean is expected is false, not a
/// failed event.
#[test]
fn stripe_null_booleans_are_false() {
    for name in [
        "customer.subscription.updated",
        "2024-09-30.acacia/customer.subscription.updated",
    ] {
        let e = edited(Provider::Stripe, name, |v| {
            v["data"]["object"]["cancel_at_period_end"] = json!(null);
        });
        let sub = subscription_of(&e);
        assert!(!sub.cancel_at_period_end, "{name}");
        assert_eq!(sub.status, "active", "{name}");
    }
    // A proration flag sent as null: not a proration.
    for (dir, _) in VERSIONS {
        let e = versioned_edited(dir, "invoice.paid.first_with_one_time", |v| {
            for line in lines(v) {
                if line.get("parent").is_some() {
                    for details in ["subscription_item_details", "invoice_item_details"] {
                        if line["parent"][details].is_object() {
                            line["parent"][details]["proration"] = json!(null);
                        }
                    }
                } else {
                    line["proration"] = json!(null);
                }
            }
        });
        assert_eq!(
            line_kinds(payment_of(&e)),
            Some(vec![LineKind::OneTime, LineKind::Period]),
            "{dir}"
        );
    }
}

// --- thin events ---------------------------------------------------------------------------

/// Issue 10, case 9: a thin event is a 400 whose detail says to configure
/// the event destination with snapshot payloads.
#[test]
fn stripe_thin_events_are_400_with_the_fix_in_the_detail() {
    let thin = |body: &[u8], what: &str| {
        assert_bad_request(Provider::Stripe, body, what);
        match stripe::parse(body) {
            Err(Error::BadRequest { detail }) => {
                assert_eq!(detail, stripe::THIN_EVENT, "{what}");
                assert!(detail.contains("snapshot payloads"), "{what}: {detail}");
            }
            other => panic!("{what}: expected the thin event's 400, got {other:?}"),
        }
    };
    thin(
        fixture(Provider::Stripe, "thin.v1.invoice.paid").as_bytes(),
        "a v2.core.event",
    );
    // A reference without the object, whatever `object` says.
    let body = json!({
        "id": "evt_1S5AcmeThinNoObject01", "object": "event", "type": "invoice.paid",
        "created": 1_760_187_904,
        "related_object": {"id": "in_1S5AcmeRenewalInvoice01", "type": "invoice",
                           "url": "/v1/invoices/in_1S5AcmeRenewalInvoice01"},
        "data": {}
    });
    thin(
        body.to_string().as_bytes(),
        "related_object without data.object",
    );

    // A snapshot event is still read when it also carries a reference.
    let e = edited(Provider::Stripe, "invoice.paid", |v| {
        v["related_object"] = json!({"id": "in_1S5AcmeRenewalInvoice01", "type": "invoice"});
    });
    assert_eq!(payment_of(&e).amount, 2900);
}

// --- refunds and disputes ------------------------------------------------------------------

fn refund(
    id: &str,
    pi: &str,
    charge: &str,
    amount: i64,
    status: ReversalStatus,
    word: &str,
) -> Reversal {
    Reversal {
        id: id.to_owned(),
        payment_keys: keys(&[pi, charge]),
        kind: ReversalKind::Refund,
        amount,
        currency: Some("USD".to_owned()),
        status,
        cumulative: false,
        provider_status: Some(word.to_owned()),
    }
}

fn renewal_dispute(status: ReversalStatus, word: &str) -> Reversal {
    Reversal {
        id: "du_1S5AcmeRenewalDispute1".to_owned(),
        payment_keys: keys(&[RENEWAL_PI, RENEWAL_CHARGE]),
        kind: ReversalKind::Dispute,
        amount: 2900,
        currency: Some("USD".to_owned()),
        status,
        cumulative: false,
        provider_status: Some(word.to_owned()),
    }
}

/// Issue 10, case 10: `charge.refunded` is the charge's running total of
/// refunds, kept by the charge.
#[test]
fn stripe_charge_refunded_is_a_cumulative_refund_per_api_version() {
    for (dir, _) in VERSIONS {
        for (name, amount) in [
            ("charge.refunded.partial", 500),
            ("charge.refunded.full", 2000),
        ] {
            let e = versioned(dir, name);
            assert_eq!(e.kind, "charge.refunded", "{dir}{name}");
            assert_eq!(e.account_id, None, "{dir}{name}");
            assert_eq!(e.customer, None, "{dir}{name}");
            assert_eq!(
                reversal_of(&e),
                &Reversal {
                    id: format!("total:{CREDITS_CHARGE}"),
                    payment_keys: keys(&[CREDITS_PI, CREDITS_CHARGE]),
                    kind: ReversalKind::Refund,
                    amount,
                    currency: Some("USD".to_owned()),
                    status: ReversalStatus::Effective,
                    cumulative: true,
                    provider_status: None,
                },
                "{dir}{name}"
            );
        }
    }
    // A charge with no payment intent (made with the Charges API).
    let e = edited(Provider::Stripe, "charge.refunded.partial", |v| {
        v["data"]["object"]["payment_intent"] = json!(null);
    });
    assert_eq!(reversal_of(&e).payment_keys, keys(&[CREDITS_CHARGE]));
}

/// Issue 10, case 10: each refund by its id, in its latest state.
#[test]
fn stripe_refunds_per_api_version() {
    use ReversalStatus::{Effective, Void};
    for (dir, _) in VERSIONS {
        let created = versioned(dir, "refund.created");
        assert_eq!(created.account_id, None, "{dir}");
        assert_eq!(
            reversal_of(&created),
            &refund(
                "re_3S5AcmeCreditsRefund01",
                CREDITS_PI,
                CREDITS_CHARGE,
                500,
                Effective,
                "succeeded"
            ),
            "{dir}"
        );
        assert_eq!(
            reversal_of(&versioned(dir, "charge.refund.updated")),
            reversal_of(&created),
            "{dir}: the same refund, its metadata changed"
        );
        assert_eq!(
            reversal_of(&versioned(dir, "refund.updated")),
            &refund(
                "re_3S5AcmeFirstRefund0001",
                FIRST_PI,
                FIRST_CHARGE,
                4900,
                Effective,
                "succeeded"
            ),
            "{dir}"
        );
        assert_eq!(
            reversal_of(&versioned(dir, "refund.failed")),
            &refund(
                "re_3S5AcmeRenewalRefund01",
                RENEWAL_PI,
                RENEWAL_CHARGE,
                2900,
                Void,
                "failed"
            ),
            "{dir}"
        );
    }
}

#[test]
fn stripe_refund_statuses() {
    use ReversalStatus::{Effective, Void};
    // Credits go back when the merchant starts the refund, and return if it
    // fails or is canceled.
    for (word, status) in [
        ("pending", Effective),
        ("requires_action", Effective),
        ("succeeded", Effective),
        ("failed", Void),
        ("canceled", Void),
        ("a_status_to_come", Effective),
    ] {
        let e = edited(Provider::Stripe, "refund.updated", |v| {
            v["data"]["object"]["status"] = json!(word);
        });
        assert_eq!(reversal_of(&e).status, status, "{word}");
        assert_eq!(reversal_of(&e).provider_status.as_deref(), Some(word));
    }
    // Expanded ids; a refund naming no payment at all is ignored.
    let e = edited(Provider::Stripe, "refund.created", |v| {
        let refund = &mut v["data"]["object"];
        refund["payment_intent"] = json!({"id": CREDITS_PI, "object": "payment_intent"});
        refund["charge"] = json!({"id": CREDITS_CHARGE, "object": "charge"});
    });
    assert_eq!(
        reversal_of(&e).payment_keys,
        keys(&[CREDITS_PI, CREDITS_CHARGE])
    );
    let e = edited(Provider::Stripe, "refund.created", |v| {
        let refund = &mut v["data"]["object"];
        refund["payment_intent"] = json!(null);
        refund["charge"] = json!(null);
    });
    assert!(matches!(e.change, Change::Ignored { .. }), "{:?}", e.change);
    let e = edited(Provider::Stripe, "refund.created", |v| {
        remove(&mut v["data"]["object"], "amount");
    });
    assert!(invalid_error(&e).contains("amount"));
}

/// Issue 10, case 10: a dispute is one entry whose status moves; won gives
/// the credits back, lost keeps them taken.
#[test]
fn stripe_disputes_per_api_version() {
    use ReversalStatus::{Effective, Void};
    for (dir, _) in VERSIONS {
        for (name, status, word) in [
            ("charge.dispute.created", Effective, "needs_response"),
            (
                "charge.dispute.funds_withdrawn",
                Effective,
                "needs_response",
            ),
            ("charge.dispute.updated", Effective, "under_review"),
            ("charge.dispute.closed.won", Void, "won"),
            ("charge.dispute.funds_reinstated", Void, "won"),
            ("charge.dispute.closed.lost", Effective, "lost"),
        ] {
            let e = versioned(dir, name);
            assert_eq!(e.account_id, None, "{dir}{name}");
            assert_eq!(
                reversal_of(&e),
                &renewal_dispute(status, word),
                "{dir}{name}"
            );
        }
    }
}

#[test]
fn stripe_dispute_statuses() {
    use ReversalStatus::{Effective, Pending, Void};
    for (word, status) in [
        // An inquiry: no money moved yet.
        ("warning_needs_response", Pending),
        ("warning_under_review", Pending),
        ("warning_closed", Void),
        ("needs_response", Effective),
        ("under_review", Effective),
        ("won", Void),
        ("lost", Effective),
        ("prevented", Void),
        ("a_status_to_come", Effective),
    ] {
        let e = edited(Provider::Stripe, "charge.dispute.created", |v| {
            v["data"]["object"]["status"] = json!(word);
        });
        assert_eq!(reversal_of(&e), &renewal_dispute(status, word), "{word}");
    }
    let e = edited(Provider::Stripe, "charge.dispute.created", |v| {
        v["data"]["object"]["payment_intent"] = json!(null);
        v["data"]["object"]["charge"] = json!({"id": RENEWAL_CHARGE, "object": "charge"});
    });
    assert_eq!(reversal_of(&e).payment_keys, keys(&[RENEWAL_CHARGE]));
    let e = edited(Provider::Stripe, "charge.dispute.created", |v| {
        remove(&mut v["data"]["object"], "charge");
    });
    assert!(invalid_error(&e).contains("dispute"));
}
