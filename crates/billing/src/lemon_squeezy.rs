//! Lemon Squeezy webhooks (`POST /webhooks/lemon-squeezy`) read into one [`Event`].
//!
//! A payload is `meta` (`event_name`, `custom_data` from the checkout) and
//! `data`, one JSON:API resource (`type`, `id`, `attributes`): an order, a
//! subscription or a subscription invoice. Ids are numbers in attributes and
//! strings in `data.id`; we keep them all as strings.
//!
//! Lemon Squeezy sends no event id and no event time. The event id is
//! `<event_name>:<data.type>:<data.id>:<attributes.updated_at>:<digest>`,
//! where the digest is the first 16 hex digits of the SHA-256 of the raw
//! body: a redelivery of the same bytes has the same id, while two different
//! updates of one resource within the same second (`updated_at` has
//! one-second precision) differ. Should a redelivery ever be rendered anew
//! (its signed URLs re-signed), it is a second event carrying the same
//! state, which the database applies idempotently: payments grant once per
//! invoice, refunds are running totals. `updated_at` is also the event's
//! time.
//!
//! A subscription invoice paid (`subscription_payment_success`) is a
//! [`Payment`] of its `total`; its `billing_reason` decides what it pays
//! for: `initial` and `renewal` are a full period of the subscription's
//! stored items (the invoice lists no variants), `updated` (a plan change's
//! proration) and any reason not known here pay for no period. Refunds
//! (`order_refunded`, `subscription_payment_refunded`) report only the
//! running `refunded_amount` of the order or invoice, so each is one
//! cumulative [`Reversal`] with id `total:<order or invoice id>`.
//!
//! `null` where a boolean is expected (`cancelled`, `is_usage_based`,
//! `refunded`) reads as false.
//!
//! The account is `meta.custom_data.account_id` (our checkout passes
//! `checkout[custom][account_id]`).

use edge_core::Error;
use serde::Deserialize;
use serde_json::Value;

use crate::event::{
    gives_access, Change, Customer, Event, Order, OrderItem, Payment, Provider, Reversal,
    ReversalKind, ReversalStatus, Subscription, SubscriptionItem,
};
use crate::parse::{
    currency, non_empty, normalize_rfc3339, null_as_default, read, time_field, unreadable,
    CustomData, Id, Parts,
};

/// Reads a verified Lemon Squeezy webhook. An unreadable body, or one without
/// `meta.event_name`, `data.type`, `data.id` or `data.attributes.updated_at`
/// (the event's id and time), is [`Error::BadRequest`]; an event we handle
/// whose resource lacks what we need is [`Change::Invalid`]; any other event
/// is [`Change::Ignored`].
pub fn parse(body: &[u8]) -> Result<Event, Error> {
    let provider = Provider::LemonSqueezy;
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| unreadable(provider, e))?;
    let stamp: Stamp = Stamp::deserialize(&envelope.data.attributes)
        .map_err(|e| unreadable(provider, format!("data.attributes: {e}")))?;
    let event_name = envelope.meta.event_name;
    let (kind, id) = (envelope.data.kind, envelope.data.id.to_string());
    if [&event_name, &kind, &id, &stamp.updated_at]
        .iter()
        .any(|part| part.trim().is_empty())
    {
        return Err(unreadable(
            provider,
            "the event name, data type, id or updated_at is empty",
        ));
    }
    let occurred_at = normalize_rfc3339(&stamp.updated_at)
        .ok_or_else(|| unreadable(provider, "data.attributes.updated_at is not a time"))?;
    let event_id = format!(
        "{event_name}:{kind}:{id}:{}:{}",
        stamp.updated_at,
        body_digest(body)
    );
    let parts = change(&event_name, &id, &envelope.data.attributes)
        .and_then(|mut parts| {
            if !matches!(parts.change, Change::Ignored { .. }) {
                parts.account_id = account_id(envelope.meta.custom_data.as_ref())?;
            }
            Ok(parts)
        })
        .unwrap_or_else(Parts::invalid);
    Ok(Event {
        provider,
        event_id,
        kind: event_name,
        occurred_at,
        api_version: None,
        notification_id: None,
        account_id: parts.account_id,
        customer: parts.customer,
        change: parts.change,
    })
}

/// The first 16 hex digits (64 bits) of the SHA-256 of the raw body: tells
/// apart two bodies with the same resource and `updated_at`.
fn body_digest(body: &[u8]) -> String {
    let mut digest = edge_core::sha256_hex(body);
    digest.truncate(16);
    digest
}

/// `meta.custom_data.account_id`, when the checkout passed one.
fn account_id(custom_data: Option<&Value>) -> Result<Option<String>, String> {
    match custom_data {
        None | Some(Value::Null) => Ok(None),
        Some(custom) => read::<CustomData>(custom, "meta.custom_data").map(|c| c.account_id()),
    }
}

fn change(event_name: &str, id: &str, attributes: &Value) -> Result<Parts, String> {
    match event_name {
        "order_created" => order(id, read(attributes, "order")?),
        "subscription_created"
        | "subscription_updated"
        | "subscription_cancelled"
        | "subscription_expired" => subscription(id, read(attributes, "subscription")?),
        "subscription_payment_success" => payment(id, read(attributes, "subscription invoice")?),
        "order_refunded" => refund(id, "order", read(attributes, "order")?),
        "subscription_payment_refunded" => refund(
            id,
            "subscription invoice",
            read(attributes, "subscription invoice")?,
        ),
        other => Ok(Parts::ignored(format!(
            "lemon-squeezy event {other} is not one this function applies"
        ))),
    }
}

#[derive(Deserialize)]
struct Envelope {
    meta: Meta,
    data: Data,
}

#[derive(Deserialize)]
struct Meta {
    event_name: String,
    #[serde(default)]
    custom_data: Option<Value>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "type")]
    kind: String,
    id: Id,
    attributes: Value,
}

#[derive(Deserialize)]
struct Stamp {
    updated_at: String,
}

fn customer(customer_id: Option<Id>, email: Option<String>) -> Option<Customer> {
    non_empty(customer_id.map(|id| id.to_string())).map(|customer_id| Customer {
        customer_id,
        email: non_empty(email),
    })
}

// --- Orders ---------------------------------------------------------------------

#[derive(Deserialize)]
struct LsOrder {
    status: String,
    #[serde(default)]
    customer_id: Option<Id>,
    #[serde(default)]
    user_email: Option<String>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    total: Option<i64>,
    #[serde(default)]
    first_order_item: Option<LsOrderItem>,
}

#[derive(Deserialize)]
struct LsOrderItem {
    #[serde(default)]
    product_id: Option<Id>,
    variant_id: Id,
    #[serde(default)]
    quantity: Option<i64>,
    #[serde(default)]
    price: Option<i64>,
}

fn order(id: &str, order: LsOrder) -> Result<Parts, String> {
    let status = match order.status.as_str() {
        "paid" => "succeeded",
        // A partial refund leaves the purchase standing.
        "partial_refund" => "succeeded",
        "pending" => "pending",
        "failed" | "fraudulent" => "failed",
        "refunded" => {
            return Ok(Parts::ignored(format!(
                "lemon-squeezy order {id} arrived already refunded"
            )))
        }
        other => return Err(format!("lemon-squeezy order {id} has status {other:?}")),
    };
    let Some(item) = order.first_order_item else {
        return Err(format!("lemon-squeezy order {id} has no first_order_item"));
    };
    let order_row = Order {
        id: id.to_owned(),
        status: status.to_owned(),
        total_amount: order.total,
        currency: currency(order.currency),
        items: vec![OrderItem {
            product_id: item.product_id.map(|p| p.to_string()),
            variant_id: item.variant_id.to_string(),
            quantity: item.quantity.unwrap_or(1),
            price_amount: item.price,
        }],
        payment_keys: Vec::new(),
    };
    Ok(Parts::new(
        None,
        customer(order.customer_id, order.user_email),
        Change::Order { order: order_row },
    ))
}

// --- Subscriptions ----------------------------------------------------------------

#[derive(Deserialize)]
struct LsSubscription {
    status: String,
    #[serde(default, deserialize_with = "null_as_default")]
    cancelled: bool,
    #[serde(default)]
    customer_id: Option<Id>,
    #[serde(default)]
    user_email: Option<String>,
    #[serde(default)]
    product_id: Option<Id>,
    variant_id: Id,
    #[serde(default)]
    renews_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default)]
    trial_ends_at: Option<String>,
    #[serde(default)]
    first_subscription_item: Option<LsSubscriptionItem>,
}

#[derive(Deserialize)]
struct LsSubscriptionItem {
    #[serde(default)]
    quantity: Option<i64>,
    #[serde(default, deserialize_with = "null_as_default")]
    is_usage_based: bool,
}

fn subscription(id: &str, sub: LsSubscription) -> Result<Parts, String> {
    // Lemon Squeezy's own words for two of the statuses the database knows.
    let status = match sub.status.as_str() {
        "on_trial" => "trialing".to_owned(),
        "cancelled" => "canceled".to_owned(),
        other => other.to_owned(),
    };
    // Once cancelled (or expired) the subscription runs to `ends_at`;
    // `renews_at` is the next renewal otherwise.
    let ending = sub.cancelled || matches!(sub.status.as_str(), "cancelled" | "expired");
    let period_end = if ending {
        sub.ends_at.as_deref().or(sub.renews_at.as_deref())
    } else {
        sub.renews_at.as_deref()
    };
    let item = sub.first_subscription_item.as_ref();
    let subscription = Subscription {
        id: id.to_owned(),
        // Cancelled is Lemon Squeezy's grace period: paid up to `ends_at`.
        active: gives_access(&status) || sub.status == "cancelled",
        status,
        cancel_at_period_end: sub.cancelled,
        // The subscription object has no currency and no period start.
        currency: None,
        period_starts_at: None,
        period_ends_at: time_field(period_end, "renews_at/ends_at")?,
        trial_starts_at: None,
        trial_ends_at: time_field(sub.trial_ends_at.as_deref(), "trial_ends_at")?,
        items: vec![SubscriptionItem {
            product_id: sub.product_id.map(|p| p.to_string()),
            variant_id: sub.variant_id.to_string(),
            item_type: if item.is_some_and(|i| i.is_usage_based) {
                "metered"
            } else {
                "flat"
            }
            .to_owned(),
            quantity: item.and_then(|i| i.quantity).unwrap_or(1),
            // The payload does not say (the variant does).
            interval: None,
            interval_count: None,
            price_amount: None,
        }],
    };
    Ok(Parts::new(
        None,
        customer(sub.customer_id, sub.user_email),
        Change::Subscription { subscription },
    ))
}

// --- Subscription invoices ----------------------------------------------------------

#[derive(Deserialize)]
struct LsInvoice {
    subscription_id: Id,
    #[serde(default)]
    customer_id: Option<Id>,
    #[serde(default)]
    user_email: Option<String>,
    /// `initial`, `renewal` or `updated`.
    #[serde(default)]
    billing_reason: Option<String>,
    #[serde(default)]
    currency: Option<String>,
    /// In cents, after discounts, with tax.
    #[serde(default)]
    total: Option<i64>,
}

fn payment(id: &str, invoice: LsInvoice) -> Result<Parts, String> {
    let Some(amount) = invoice.total else {
        return Err(format!(
            "lemon-squeezy subscription invoice {id} has no total"
        ));
    };
    let billing_reason = non_empty(invoice.billing_reason);
    let lines = match billing_reason.as_deref() {
        // A full period: the subscription's stored items (an invoice does
        // not list variants).
        Some("initial" | "renewal") => None,
        // `updated`: a plan change billed now, its proration; it pays for no
        // period (the new plan's credits come with its renewal). A reason
        // not known here grants nothing either.
        _ => Some(Vec::new()),
    };
    let payment = Payment {
        subscription_id: invoice.subscription_id.to_string(),
        reference: id.to_owned(),
        billing_reason,
        amount,
        currency: currency(invoice.currency),
        // Refunds name the invoice itself.
        payment_keys: Vec::new(),
        lines,
    };
    Ok(Parts::new(
        None,
        customer(invoice.customer_id, invoice.user_email),
        Change::Payment { payment },
    ))
}

// --- Refunds ------------------------------------------------------------------------

/// What `order_refunded` (an order) and `subscription_payment_refunded` (a
/// subscription invoice) share.
#[derive(Deserialize)]
struct LsRefunded {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    customer_id: Option<Id>,
    #[serde(default)]
    user_email: Option<String>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    total: Option<i64>,
    /// All refunded so far, in cents.
    #[serde(default)]
    refunded_amount: Option<i64>,
    /// Whether it is fully refunded.
    #[serde(default, deserialize_with = "null_as_default")]
    refunded: bool,
}

/// The order's or invoice's refunds so far, as one running total: the
/// largest total seen counts, so partial refunds and redeliveries in any
/// order end at the latest sum.
fn refund(id: &str, what: &str, refunded: LsRefunded) -> Result<Parts, String> {
    let amount = match (refunded.refunded_amount, refunded.refunded, refunded.total) {
        (Some(amount), _, _) => amount,
        // Older payloads without `refunded_amount`: a full refund is the total.
        (None, true, Some(total)) => total,
        _ => return Err(format!("lemon-squeezy {what} {id} has no refunded_amount")),
    };
    let reversal = Reversal {
        id: format!("total:{id}"),
        payment_keys: vec![id.to_owned()],
        kind: ReversalKind::Refund,
        amount: amount.max(0),
        currency: currency(refunded.currency),
        // Lemon Squeezy reports a refund once it is made.
        status: ReversalStatus::Effective,
        cumulative: true,
        provider_status: non_empty(refunded.status),
    };
    Ok(Parts::new(
        None,
        customer(refunded.customer_id, refunded.user_email),
        Change::Reversal { reversal },
    ))
}
