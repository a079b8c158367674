//! Paddle Billing notifications (`POST /webhooks/paddle`) read into one [`Event`].
//!
//! The envelope is `event_id`, `event_type`, `occurred_at` (RFC 3339),
//! `notification_id` (one per delivery, so not the dedupe key; kept on the
//! recorded event) and `data`, the entity as it is now: a transaction, a
//! subscription or an adjustment. Amounts are strings in minor units
//! (`"2900"`).
//!
//! A completed transaction of a subscription is a [`Payment`] of
//! `details.totals.total` (after discounts, with tax; `"0"` for a trial's
//! first transaction, which grants nothing). Its `origin` says why it was
//! billed, and each item is one line: a price without `billing_cycle` is a
//! one-time purchase; an item with a `proration`, or any item of a
//! transaction whose origin is not `web`, `api` or `subscription_recurring`
//! (a plan change billed now, `subscription_update`; a one-off charge,
//! `subscription_charge`), is a proration, which grants nothing; the rest are
//! full periods. A line's amount is its `details.line_items[]` total, matched
//! by price id.
//!
//! Adjustments (`adjustment.created`, `adjustment.updated`) are refunds,
//! credits, chargebacks and their reversals of a transaction, read into one
//! [`Reversal`] each, by adjustment id and in its latest status: it counts
//! once `approved` (most refunds are created `pending_approval` and approved
//! later), and counts as nothing when `rejected`. A credit or chargeback
//! undone is marked `reversed` and still counts: Paddle undoes it with an
//! adjustment of its own (`credit_reverse`, `chargeback_reverse`), which
//! counts the other way, so treating both as the undoing would count it twice.
//!
//! The account is the entity's `custom_data.account_id` (our checkout passes
//! it; Paddle copies a transaction's custom data to the subscription it
//! creates); adjustments carry none, the database finds the transaction.
//! Paddle prices have no usage type: an item is per_seat when the price's
//! `custom_data.item_type` says so, flat otherwise.

use edge_core::Error;
use serde::Deserialize;
use serde_json::Value;

use crate::event::{
    gives_access, Change, Customer, Event, LineKind, Order, OrderItem, PaidLine, Payment, Provider,
    Reversal, ReversalKind, ReversalStatus, Subscription, SubscriptionItem,
};
use crate::parse::{
    currency, minor_units, non_empty, normalize_rfc3339, read, time_field, unreadable, CustomData,
    Parts,
};

/// Reads a verified Paddle notification. An unreadable body, or one without
/// `event_id`, `event_type` or a readable `occurred_at`, is
/// [`Error::BadRequest`]; an event we handle whose entity lacks what we need
/// is [`Change::Invalid`]; any other type is [`Change::Ignored`].
pub fn parse(body: &[u8]) -> Result<Event, Error> {
    let provider = Provider::Paddle;
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| unreadable(provider, e))?;
    if envelope.event_id.trim().is_empty() || envelope.event_type.trim().is_empty() {
        return Err(unreadable(provider, "the event id or type is empty"));
    }
    let occurred_at = normalize_rfc3339(&envelope.occurred_at)
        .ok_or_else(|| unreadable(provider, "occurred_at is not an RFC 3339 time"))?;
    let data = envelope.data.unwrap_or_default();
    let parts = change(&envelope.event_type, &data).unwrap_or_else(Parts::invalid);
    Ok(Event {
        provider,
        event_id: envelope.event_id,
        kind: envelope.event_type,
        occurred_at,
        api_version: None,
        notification_id: non_empty(envelope.notification_id),
        account_id: parts.account_id,
        customer: parts.customer,
        change: parts.change,
    })
}

fn change(kind: &str, data: &Value) -> Result<Parts, String> {
    match kind {
        "transaction.completed" => transaction(read(data, "transaction")?),
        "adjustment.created" | "adjustment.updated" => adjustment(read(data, "adjustment")?),
        "subscription.created" | "subscription.updated" | "subscription.canceled" => {
            subscription(read(data, "subscription")?)
        }
        other => Ok(Parts::ignored(format!(
            "paddle event type {other} is not one this function applies"
        ))),
    }
}

#[derive(Deserialize)]
struct Envelope {
    event_id: String,
    event_type: String,
    occurred_at: String,
    #[serde(default)]
    notification_id: Option<String>,
    #[serde(default)]
    data: Option<Value>,
}

fn customer(customer_id: Option<String>) -> Option<Customer> {
    // Paddle sends the customer's email only on customer.* events.
    non_empty(customer_id).map(|customer_id| Customer {
        customer_id,
        email: None,
    })
}

fn account(custom_data: Option<CustomData>) -> Option<String> {
    custom_data.and_then(|c| c.account_id())
}

#[derive(Deserialize)]
struct Price {
    id: String,
    #[serde(default)]
    product_id: Option<String>,
    #[serde(default)]
    unit_price: Option<Money>,
    #[serde(default)]
    billing_cycle: Option<Cycle>,
    #[serde(default)]
    custom_data: Option<PriceCustomData>,
}

#[derive(Deserialize)]
struct Money {
    amount: String,
}

#[derive(Deserialize)]
struct Cycle {
    interval: String,
    frequency: i64,
}

#[derive(Deserialize)]
struct PriceCustomData {
    #[serde(default)]
    item_type: Option<String>,
}

impl Price {
    fn unit_amount(&self) -> Result<Option<i64>, String> {
        self.unit_price
            .as_ref()
            .map(|m| minor_units(&m.amount, "unit_price.amount"))
            .transpose()
    }

    fn item_type(&self) -> &'static str {
        let item_type = self
            .custom_data
            .as_ref()
            .and_then(|c| c.item_type.as_deref());
        if item_type == Some("per_seat") {
            "per_seat"
        } else {
            "flat"
        }
    }
}

// --- Transactions -------------------------------------------------------------------

#[derive(Deserialize)]
struct Transaction {
    id: String,
    #[serde(default)]
    customer_id: Option<String>,
    #[serde(default)]
    subscription_id: Option<String>,
    #[serde(default)]
    currency_code: Option<String>,
    #[serde(default)]
    custom_data: Option<CustomData>,
    /// How the transaction was created: `web` (checkout), `api`,
    /// `subscription_recurring` (a renewal), `subscription_update` (a change
    /// billed now), `subscription_charge` (a one-off charge), ...
    #[serde(default)]
    origin: Option<String>,
    items: Vec<TransactionItem>,
    #[serde(default)]
    details: Option<Details>,
}

#[derive(Deserialize)]
struct TransactionItem {
    price: Price,
    quantity: i64,
    /// Set (`rate`, `billing_period`) when the item is prorated; null or
    /// absent otherwise.
    #[serde(default)]
    proration: Option<Value>,
}

#[derive(Default, Deserialize)]
struct Details {
    #[serde(default)]
    totals: Option<Totals>,
    /// Paddle's totals per item, the source of truth for amounts.
    #[serde(default)]
    line_items: Vec<LineItem>,
}

#[derive(Deserialize)]
struct Totals {
    total: String,
}

#[derive(Deserialize)]
struct LineItem {
    price_id: String,
    #[serde(default)]
    proration: Option<Value>,
    #[serde(default)]
    totals: Option<Totals>,
}

/// The origins of a transaction that bills full periods: the checkout, one
/// created through the API, and a renewal. Any other origin on a
/// subscription is a change or charge within a period.
fn bills_periods(origin: Option<&str>) -> bool {
    matches!(origin, Some("web" | "api" | "subscription_recurring"))
}

/// A completed transaction with a subscription is a bill of that
/// subscription, line by line; without one it is a one-off purchase.
fn transaction(txn: Transaction) -> Result<Parts, String> {
    let account_id = account(txn.custom_data);
    let customer = customer(txn.customer_id);
    let details = txn.details.unwrap_or_default();
    let total = details
        .totals
        .as_ref()
        .map(|t| minor_units(&t.total, "details.totals.total"))
        .transpose()?;
    let change = match non_empty(txn.subscription_id) {
        Some(subscription_id) => {
            let amount = total.ok_or_else(|| {
                format!("paddle transaction {} has no details.totals.total", txn.id)
            })?;
            let lines = paid_lines(&txn.items, &details.line_items, txn.origin.as_deref())?;
            Change::Payment {
                payment: Payment {
                    subscription_id,
                    reference: txn.id,
                    billing_reason: non_empty(txn.origin),
                    amount,
                    currency: currency(txn.currency_code),
                    // Adjustments name the transaction itself.
                    payment_keys: Vec::new(),
                    lines: Some(lines),
                },
            }
        }
        None => {
            let items = txn
                .items
                .iter()
                .map(|item| {
                    Ok(OrderItem {
                        product_id: item.price.product_id.clone(),
                        variant_id: item.price.id.clone(),
                        quantity: item.quantity,
                        price_amount: item.price.unit_amount()?,
                    })
                })
                .collect::<Result<_, String>>()?;
            Change::Order {
                order: Order {
                    id: txn.id,
                    // transaction.completed: paid and fully processed.
                    status: "succeeded".to_owned(),
                    total_amount: total,
                    currency: currency(txn.currency_code),
                    items,
                    payment_keys: Vec::new(),
                },
            }
        }
    };
    Ok(Parts::new(account_id, customer, change))
}

/// Each item as a paid line, its amount from the first `details.line_items`
/// entry of the same price not taken by an earlier item.
fn paid_lines(
    items: &[TransactionItem],
    line_items: &[LineItem],
    origin: Option<&str>,
) -> Result<Vec<PaidLine>, String> {
    let mut taken = vec![false; line_items.len()];
    items
        .iter()
        .map(|item| {
            let line = line_items
                .iter()
                .enumerate()
                .find(|(i, line)| !taken[*i] && line.price_id == item.price.id)
                .map(|(i, line)| {
                    taken[i] = true;
                    line
                });
            let amount = line
                .and_then(|line| line.totals.as_ref())
                .map(|t| minor_units(&t.total, "details.line_items[].totals.total"))
                .transpose()?;
            let prorated =
                item.proration.is_some() || line.is_some_and(|line| line.proration.is_some());
            let kind = if item.price.billing_cycle.is_none() {
                LineKind::OneTime
            } else if prorated || !bills_periods(origin) {
                LineKind::Proration
            } else {
                LineKind::Period
            };
            Ok(PaidLine {
                product_id: item.price.product_id.clone(),
                variant_id: item.price.id.clone(),
                quantity: item.quantity,
                amount,
                kind,
            })
        })
        .collect()
}

// --- Adjustments --------------------------------------------------------------------

#[derive(Deserialize)]
struct Adjustment {
    id: String,
    /// refund, credit, credit_reverse, chargeback, chargeback_reverse,
    /// chargeback_warning, chargeback_warning_reverse.
    action: String,
    transaction_id: String,
    /// pending_approval, approved, rejected, reversed.
    status: String,
    #[serde(default)]
    customer_id: Option<String>,
    #[serde(default)]
    currency_code: Option<String>,
    #[serde(default)]
    totals: Option<Totals>,
}

/// A refund, credit or chargeback of a transaction (or its reversal), in its
/// current status. Chargeback warnings move no money and are only recorded.
fn adjustment(adj: Adjustment) -> Result<Parts, String> {
    let kind = match adj.action.as_str() {
        "refund" | "credit" => ReversalKind::Refund,
        "credit_reverse" => ReversalKind::RefundReversal,
        "chargeback" => ReversalKind::Dispute,
        "chargeback_reverse" => ReversalKind::DisputeReversal,
        "chargeback_warning" | "chargeback_warning_reverse" => {
            return Ok(Parts::ignored(format!(
                "paddle adjustment {} is a {}: no money moved",
                adj.id, adj.action
            )))
        }
        other => return Err(format!("paddle adjustment {} has action {other:?}", adj.id)),
    };
    let status = match adj.status.as_str() {
        // `reversed`: the reverse adjustment does the undoing (module doc).
        "approved" | "reversed" => ReversalStatus::Effective,
        "pending_approval" => ReversalStatus::Pending,
        "rejected" => ReversalStatus::Void,
        other => return Err(format!("paddle adjustment {} has status {other:?}", adj.id)),
    };
    let Some(totals) = adj.totals else {
        return Err(format!("paddle adjustment {} has no totals", adj.id));
    };
    let reversal = Reversal {
        // The direction is the kind's; the amount is never negative.
        amount: minor_units(&totals.total, "totals.total")?.saturating_abs(),
        payment_keys: vec![adj.transaction_id],
        kind,
        currency: currency(adj.currency_code),
        status,
        cumulative: false,
        provider_status: Some(adj.status),
        id: adj.id,
    };
    Ok(Parts::new(
        None,
        customer(adj.customer_id),
        Change::Reversal { reversal },
    ))
}

// --- Subscriptions -----------------------------------------------------------------

#[derive(Deserialize)]
struct PaddleSubscription {
    id: String,
    status: String,
    #[serde(default)]
    customer_id: Option<String>,
    #[serde(default)]
    currency_code: Option<String>,
    #[serde(default)]
    current_billing_period: Option<Period>,
    #[serde(default)]
    scheduled_change: Option<ScheduledChange>,
    #[serde(default)]
    custom_data: Option<CustomData>,
    items: Vec<PaddleSubscriptionItem>,
}

#[derive(Deserialize)]
struct Period {
    starts_at: String,
    ends_at: String,
}

#[derive(Deserialize)]
struct ScheduledChange {
    action: String,
}

#[derive(Deserialize)]
struct PaddleSubscriptionItem {
    price: Price,
    quantity: i64,
    #[serde(default)]
    trial_dates: Option<Period>,
}

fn subscription(sub: PaddleSubscription) -> Result<Parts, String> {
    let period = sub.current_billing_period.as_ref();
    let trial = sub.items.first().and_then(|item| item.trial_dates.as_ref());
    let items = sub
        .items
        .iter()
        .map(|item| {
            Ok(SubscriptionItem {
                product_id: item.price.product_id.clone(),
                variant_id: item.price.id.clone(),
                item_type: item.price.item_type().to_owned(),
                quantity: item.quantity,
                interval: item
                    .price
                    .billing_cycle
                    .as_ref()
                    .map(|c| c.interval.clone()),
                interval_count: item.price.billing_cycle.as_ref().map(|c| c.frequency),
                price_amount: item.price.unit_amount()?,
            })
        })
        .collect::<Result<_, String>>()?;
    let subscription = Subscription {
        // A cancellation at the end of the period is a scheduled change; the
        // status stays active until then (subscription.canceled follows).
        cancel_at_period_end: sub
            .scheduled_change
            .as_ref()
            .is_some_and(|change| change.action == "cancel"),
        currency: currency(sub.currency_code),
        period_starts_at: time_field(
            period.map(|p| p.starts_at.as_str()),
            "current_billing_period.starts_at",
        )?,
        period_ends_at: time_field(
            period.map(|p| p.ends_at.as_str()),
            "current_billing_period.ends_at",
        )?,
        trial_starts_at: time_field(trial.map(|t| t.starts_at.as_str()), "trial_dates.starts_at")?,
        trial_ends_at: time_field(trial.map(|t| t.ends_at.as_str()), "trial_dates.ends_at")?,
        items,
        id: sub.id,
        active: gives_access(&sub.status),
        status: sub.status,
    };
    Ok(Parts::new(
        account(sub.custom_data),
        customer(sub.customer_id),
        Change::Subscription { subscription },
    ))
}
