//! Paddle Billing notifications (`POST /webhooks/paddle`) read into one [`Event`].
//!
//! The envelope is `event_id`, `event_type`, `occurred_at` (RFC 3339),
//! `notification_id` (one per delivery, so not the dedupe key) and `data`,
//! the entity as it is now: a transaction or a subscription. Amounts are
//! strings in minor units (`"2900"`).
//!
//! The account is the entity's `custom_data.account_id` (our checkout passes
//! it; Paddle copies a transaction's custom data to the subscription it
//! creates). Paddle prices have no usage type: an item is per_seat when the
//! price's `custom_data.item_type` says so, flat otherwise.

use edge_core::Error;
use serde::Deserialize;
use serde_json::Value;

use crate::event::{
    gives_access, Change, Customer, Event, Order, OrderItem, PaidItem, Payment, Provider,
    Subscription, SubscriptionItem,
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
        account_id: parts.account_id,
        customer: parts.customer,
        change: parts.change,
    })
}

fn change(kind: &str, data: &Value) -> Result<Parts, String> {
    match kind {
        "transaction.completed" => transaction(read(data, "transaction")?),
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
    items: Vec<TransactionItem>,
    #[serde(default)]
    details: Option<Details>,
}

#[derive(Deserialize)]
struct TransactionItem {
    price: Price,
    quantity: i64,
}

#[derive(Deserialize)]
struct Details {
    #[serde(default)]
    totals: Option<Totals>,
}

#[derive(Deserialize)]
struct Totals {
    total: String,
}

/// A completed transaction with a subscription is that subscription's period
/// paid (the first one or a renewal); without one it is a one-off purchase.
fn transaction(txn: Transaction) -> Result<Parts, String> {
    let account_id = account(txn.custom_data);
    let customer = customer(txn.customer_id);
    let change = match non_empty(txn.subscription_id) {
        Some(subscription_id) => Change::Payment {
            payment: Payment {
                subscription_id,
                reference: txn.id,
                items: Some(
                    txn.items
                        .iter()
                        .map(|item| PaidItem {
                            variant_id: item.price.id.clone(),
                            quantity: item.quantity,
                        })
                        .collect(),
                ),
            },
        },
        None => {
            let total_amount = txn
                .details
                .and_then(|d| d.totals)
                .map(|t| minor_units(&t.total, "details.totals.total"))
                .transpose()?;
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
                    total_amount,
                    currency: currency(txn.currency_code),
                    items,
                },
            }
        }
    };
    Ok(Parts::new(account_id, customer, change))
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
