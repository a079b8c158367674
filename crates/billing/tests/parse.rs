//! Every fixture in `crates/billing/fixtures` read by its provider's parser,
//! with the resulting [`Event`] checked field by field; then the older Stripe
//! API shapes, and malformed bodies.

use edge_billing::event::{
    Change, Customer, Event, Order, OrderItem, PaidItem, Payment, Provider, Subscription,
    SubscriptionItem,
};
use edge_billing::{lemon_squeezy, paddle, stripe};
use edge_core::Error;
use serde_json::{json, Value};

const ACCOUNT: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";

fn fixture(provider: Provider, name: &str) -> String {
    let path = format!(
        "{}/fixtures/{}/{name}.json",
        env!("CARGO_MANIFEST_DIR"),
        provider.as_str()
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse(provider: Provider, body: &[u8]) -> Result<Event, Error> {
    match provider {
        Provider::Stripe => stripe::parse(body),
        Provider::LemonSqueezy => lemon_squeezy::parse(body),
        Provider::Paddle => paddle::parse(body),
    }
}

fn event(provider: Provider, name: &str) -> Event {
    parse(provider, fixture(provider, name).as_bytes())
        .unwrap_or_else(|e| panic!("{} {name}: {e}", provider.as_str()))
}

/// A fixture edited as JSON, then parsed.
fn edited(provider: Provider, name: &str, edit: impl FnOnce(&mut Value)) -> Event {
    let mut value: Value = serde_json::from_str(&fixture(provider, name)).expect("fixture is JSON");
    edit(&mut value);
    parse(provider, value.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("{} {name} (edited): {e}", provider.as_str()))
}

/// Removes `key` from the object `value`, as a provider omitting a field.
fn remove(value: &mut Value, key: &str) {
    if let Some(object) = value.as_object_mut() {
        object.remove(key);
    }
}

fn customer(id: &str, email: Option<&str>) -> Option<Customer> {
    Some(Customer {
        customer_id: id.to_owned(),
        email: email.map(str::to_owned),
    })
}

fn subscription_of(event: &Event) -> &Subscription {
    match &event.change {
        Change::Subscription { subscription } => subscription,
        other => panic!("{}: not a subscription: {other:?}", event.kind),
    }
}

fn invalid_error(event: &Event) -> &str {
    match &event.change {
        Change::Invalid { error } => error,
        other => panic!("{}: not invalid: {other:?}", event.kind),
    }
}

fn assert_bad_request(provider: Provider, body: &[u8], what: &str) {
    match parse(provider, body) {
        Err(error @ Error::BadRequest { .. }) => assert_eq!(error.status(), 400, "{what}"),
        other => panic!(
            "{} {what}: expected a 400, got {other:?}",
            provider.as_str()
        ),
    }
}

fn item(variant: &str, product: &str, kind: &str, quantity: i64, amount: i64) -> SubscriptionItem {
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

// --- Stripe ------------------------------------------------------------------------

const STRIPE_CUSTOMER: &str = "cus_T1AcmeOwner0001";
const STRIPE_SUB: &str = "sub_1S5AcmeProSubscription01";
const EMAIL: &str = "owner@example.com";

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
            }
        }
    );
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
fn stripe_invoice_paid_is_a_payment_of_its_prices() {
    let e = event(Provider::Stripe, "invoice.paid");
    assert_eq!(e.event_id, "evt_1S5AcmeInvoicePaid00001");
    assert_eq!(e.kind, "invoice.paid");
    assert_eq!(e.occurred_at, "2025-10-11T13:05:04Z");
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
                items: Some(vec![PaidItem {
                    variant_id: "price_pro_monthly".to_owned(),
                    quantity: 1,
                }]),
            }
        }
    );
}

#[test]
fn stripe_invoice_paid_before_basil() {
    // invoice.subscription and line.price.id, no parent or pricing.
    let e = edited(Provider::Stripe, "invoice.paid", |v| {
        let invoice = &mut v["data"]["object"];
        remove(invoice, "parent");
        invoice["subscription"] = json!(STRIPE_SUB);
        invoice["subscription_details"] = json!({"metadata": {"account_id": ACCOUNT}});
        let line = &mut invoice["lines"]["data"][0];
        remove(line, "pricing");
        remove(line, "parent");
        line["price"] =
            json!({"id": "price_pro_monthly", "object": "price", "product": "prod_pro"});
        line["proration"] = json!(false);
        line["quantity"] = json!(2);
        let mut proration = line.clone();
        proration["price"]["id"] = json!("price_team_monthly");
        proration["proration"] = json!(true);
        if let Some(lines) = invoice["lines"]["data"].as_array_mut() {
            lines.push(proration);
        }
    });
    assert_eq!(e.account_id.as_deref(), Some(ACCOUNT));
    assert_eq!(
        e.change,
        Change::Payment {
            payment: Payment {
                subscription_id: STRIPE_SUB.to_owned(),
                reference: "in_1S5AcmeRenewalInvoice01".to_owned(),
                items: Some(vec![PaidItem {
                    variant_id: "price_pro_monthly".to_owned(),
                    quantity: 2,
                }]),
            }
        },
        "the proration line is not a period paid for"
    );
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

// --- Lemon Squeezy --------------------------------------------------------------------

const LS_SUB: &str = "1843920";
const LS_CUSTOMER: &str = "6195731";

#[test]
fn lemon_squeezy_order_created_is_an_order() {
    let e = event(Provider::LemonSqueezy, "order_created");
    assert_eq!(e.provider, Provider::LemonSqueezy);
    assert_eq!(
        e.event_id,
        "order_created:orders:5207284:2025-09-12T10:00:03.000000Z"
    );
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
        "subscription_created:subscriptions:1843920:2025-09-10T12:00:09.000000Z"
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
        "subscription_updated:subscriptions:1843920:2025-09-24T12:00:09.000000Z"
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
        "subscription_payment_success:subscription-invoices:4380652:2025-09-24T12:00:08.000000Z"
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
                items: None,
            }
        }
    );
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

// --- Paddle ---------------------------------------------------------------------------------

const PADDLE_SUB: &str = "sub_01k4c7acmepro0000000000000";
const PADDLE_CUSTOMER: &str = "ctm_01k4c7acmeowner00000000000";
const PADDLE_PRO: &str = "pri_01k4c7promonthly0000000000";

#[test]
fn paddle_one_off_transaction_is_an_order() {
    let e = event(Provider::Paddle, "transaction.completed.one-off");
    assert_eq!(e.provider, Provider::Paddle);
    assert_eq!(e.event_id, "evt_01k4ckacmecreditspaid00000");
    assert_eq!(e.kind, "transaction.completed");
    assert_eq!(e.occurred_at, "2025-09-12T10:00:06.220914Z");
    assert_eq!(e.account_id.as_deref(), Some(ACCOUNT));
    assert_eq!(e.customer, customer(PADDLE_CUSTOMER, None));
    assert_eq!(
        e.change,
        Change::Order {
            order: Order {
                id: "txn_01k4c7acmecredits000000000".to_owned(),
                status: "succeeded".to_owned(),
                total_amount: Some(2000),
                currency: Some("USD".to_owned()),
                items: vec![OrderItem {
                    product_id: Some("pro_01k4c7credits0000000000000".to_owned()),
                    variant_id: "pri_01k4c7credits1000000000000".to_owned(),
                    quantity: 2,
                    price_amount: Some(1000),
                }],
            }
        }
    );
}

#[test]
fn paddle_subscription_transaction_is_a_payment() {
    let e = event(Provider::Paddle, "transaction.completed.subscription");
    assert_eq!(e.event_id, "evt_01k4c7acmeprofirstpaid0000");
    assert_eq!(e.occurred_at, "2025-09-10T12:00:12.814637Z");
    assert_eq!(e.account_id.as_deref(), Some(ACCOUNT));
    assert_eq!(
        e.change,
        Change::Payment {
            payment: Payment {
                subscription_id: PADDLE_SUB.to_owned(),
                reference: "txn_01k4c7acmeprofirst00000000".to_owned(),
                items: Some(vec![PaidItem {
                    variant_id: PADDLE_PRO.to_owned(),
                    quantity: 1,
                }]),
            }
        }
    );
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

// --- All fixtures -----------------------------------------------------------------------------

/// Every fixture on disk parses to an event we apply (no fixture is ignored
/// or invalid, except invoice.payment_failed, ignored by design), and its
/// JSON for the database has the contract's shape.
#[test]
fn every_fixture_parses() {
    for provider in [Provider::Stripe, Provider::LemonSqueezy, Provider::Paddle] {
        let dir = format!(
            "{}/fixtures/{}",
            env!("CARGO_MANIFEST_DIR"),
            provider.as_str()
        );
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
            .filter_map(|name| name.strip_suffix(".json").map(str::to_owned))
            .collect();
        names.sort();
        assert!(names.len() >= 5, "{dir}: {names:?}");
        for name in names {
            let e = event(provider, &name);
            assert!(
                !matches!(e.change, Change::Invalid { .. }),
                "{name}: {:?}",
                e.change
            );
            if name != "invoice.payment_failed" {
                assert!(
                    !matches!(e.change, Change::Ignored { .. }),
                    "{name}: {:?}",
                    e.change
                );
                assert_eq!(e.account_id.as_deref(), Some(ACCOUNT), "{name}");
            }
            assert!(e.occurred_at.ends_with('Z'), "{name}: {}", e.occurred_at);
            let json = serde_json::to_value(&e).expect("serialises");
            assert_eq!(json["provider"], json!(provider.as_str()), "{name}");
            assert!(json["change"]["kind"].is_string(), "{name}: {json}");
        }
    }
}
