//! Stripe events (`POST /webhooks/stripe`) read into one [`Event`].
//!
//! The envelope is Stripe's Event object: `id`, `type`, `created` (unix
//! seconds: the event's time) and `data.object`, the object as it is now.
//! Objects are read as of API version 2025-03-31.basil and later, and as
//! before it where fields moved (both are accepted, so the endpoint's API
//! version may be either):
//!
//! - a subscription's `current_period_start|end` moved to its items;
//! - an invoice's `subscription` moved to
//!   `parent.subscription_details.subscription`;
//! - an invoice line's `price.id` moved to `pricing.price_details.price`.
//!
//! Which account an event bills: a Checkout Session's `client_reference_id`,
//! else its `metadata.account_id`; a subscription's `metadata.account_id`
//! (set through `subscription_data.metadata` at checkout); an invoice's
//! `parent.subscription_details.metadata.account_id` (the subscription's
//! metadata when the invoice was made). Without one the database looks the
//! account up from the customer or the subscription.
//!
//! Checkout in payment mode: webhooks do not include line items, so the
//! session must carry what was bought in `metadata.price_id` (and
//! `metadata.quantity`, default 1), which our checkout sets.

use std::collections::HashMap;

use edge_core::Error;
use serde::Deserialize;
use serde_json::Value;

use crate::event::{
    gives_access, Change, Customer, Event, Order, OrderItem, PaidItem, Payment, Provider,
    Subscription, SubscriptionItem,
};
use crate::parse::{currency, non_empty, read, unix_field, unix_to_rfc3339, unreadable, Parts};

/// Reads a verified Stripe event. An unreadable body, or one without `id`,
/// `type` or `created`, is [`Error::BadRequest`]; an event we handle whose
/// object lacks what we need is [`Change::Invalid`]; any other type is
/// [`Change::Ignored`].
pub fn parse(body: &[u8]) -> Result<Event, Error> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| unreadable(Provider::Stripe, e))?;
    if envelope.id.trim().is_empty() || envelope.kind.trim().is_empty() {
        return Err(unreadable(
            Provider::Stripe,
            "the event id or type is empty",
        ));
    }
    let occurred_at = unix_to_rfc3339(envelope.created)
        .ok_or_else(|| unreadable(Provider::Stripe, "`created` is not a time"))?;
    let object = envelope.data.map(|data| data.object).unwrap_or_default();
    let parts = change(&envelope.kind, &object).unwrap_or_else(Parts::invalid);
    Ok(Event {
        provider: Provider::Stripe,
        event_id: envelope.id,
        kind: envelope.kind,
        occurred_at,
        account_id: parts.account_id,
        customer: parts.customer,
        change: parts.change,
    })
}

/// Why `invoice.payment_failed` changes nothing here.
pub const PAYMENT_FAILED_REASON: &str =
    "the subscription's state arrives with customer.subscription.updated";

fn change(kind: &str, object: &Value) -> Result<Parts, String> {
    match kind {
        "checkout.session.completed" => checkout(read(object, "checkout session")?, None),
        "checkout.session.async_payment_succeeded" => {
            checkout(read(object, "checkout session")?, Some("succeeded"))
        }
        "checkout.session.async_payment_failed" => {
            checkout(read(object, "checkout session")?, Some("failed"))
        }
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted" => subscription(read(object, "subscription")?),
        "invoice.paid" => invoice_paid(read(object, "invoice")?),
        "invoice.payment_failed" => Ok(Parts::ignored(PAYMENT_FAILED_REASON)),
        other => Ok(Parts::ignored(format!(
            "stripe event type {other} is not one this function applies"
        ))),
    }
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    #[serde(default)]
    data: Option<EventData>,
}

#[derive(Deserialize)]
struct EventData {
    #[serde(default)]
    object: Value,
}

type Metadata = HashMap<String, String>;

fn metadata_account(metadata: Option<&Metadata>) -> Option<String> {
    non_empty(metadata.and_then(|m| m.get("account_id")).cloned())
}

/// A field Stripe sends as an id, or as the object when expanded.
#[derive(Deserialize)]
#[serde(untagged)]
enum Expandable {
    Id(String),
    Object(Expanded),
}

#[derive(Deserialize)]
struct Expanded {
    id: String,
    #[serde(default)]
    email: Option<String>,
}

impl Expandable {
    fn id(&self) -> &str {
        match self {
            Expandable::Id(id) => id,
            Expandable::Object(object) => &object.id,
        }
    }
}

/// The customer and the best email the payload has for them.
fn customer(customer: Option<Expandable>, email: Option<String>) -> Option<Customer> {
    let customer = customer?;
    let (customer_id, expanded_email) = match customer {
        Expandable::Id(id) => (id, None),
        Expandable::Object(object) => (object.id, object.email),
    };
    non_empty(Some(customer_id)).map(|customer_id| Customer {
        customer_id,
        email: non_empty(email).or_else(|| non_empty(expanded_email)),
    })
}

// --- Checkout Sessions --------------------------------------------------------

#[derive(Deserialize)]
struct Session {
    id: String,
    mode: String,
    payment_status: String,
    #[serde(default)]
    client_reference_id: Option<String>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    customer: Option<Expandable>,
    #[serde(default)]
    customer_details: Option<CustomerDetails>,
    #[serde(default)]
    customer_email: Option<String>,
    #[serde(default)]
    amount_total: Option<i64>,
    #[serde(default)]
    currency: Option<String>,
}

#[derive(Deserialize)]
struct CustomerDetails {
    #[serde(default)]
    email: Option<String>,
}

/// `async_status` is the order's status the event itself states
/// (`async_payment_succeeded|failed`); `completed` reads it from
/// `payment_status`.
fn checkout(session: Session, async_status: Option<&str>) -> Result<Parts, String> {
    let account_id = non_empty(session.client_reference_id)
        .or_else(|| metadata_account(session.metadata.as_ref()));
    let email = session
        .customer_details
        .and_then(|details| details.email)
        .or(session.customer_email);
    let customer = customer(session.customer, email);
    match session.mode.as_str() {
        // The subscription arrives in its own customer.subscription.* events;
        // this one links the customer to the account the checkout was for.
        "subscription" => match customer {
            Some(customer) => Ok(Parts::new(account_id, Some(customer), Change::Customer)),
            None => Err(format!(
                "checkout session {} in subscription mode names no customer",
                session.id
            )),
        },
        "payment" => {
            let status = match async_status {
                Some(status) => status,
                None => match session.payment_status.as_str() {
                    "paid" | "no_payment_required" => "succeeded",
                    // Delayed payment methods (bank debits): the outcome
                    // follows as async_payment_succeeded|failed.
                    "unpaid" => "pending",
                    other => {
                        return Err(format!(
                            "checkout session {} has payment_status {other:?}",
                            session.id
                        ))
                    }
                },
            };
            let metadata = session.metadata.unwrap_or_default();
            let Some(price_id) = non_empty(metadata.get("price_id").cloned()) else {
                return Err(format!(
                    "checkout session {} has no metadata.price_id saying what was bought",
                    session.id
                ));
            };
            let quantity = match metadata.get("quantity") {
                None => 1,
                Some(text) => text.trim().parse().ok().filter(|q| *q > 0).ok_or_else(|| {
                    format!(
                        "checkout session {} has metadata.quantity {text:?}, not a positive integer",
                        session.id
                    )
                })?,
            };
            let order = Order {
                id: session.id,
                status: status.to_owned(),
                total_amount: session.amount_total,
                currency: currency(session.currency),
                items: vec![OrderItem {
                    product_id: None,
                    variant_id: price_id,
                    quantity,
                    price_amount: None,
                }],
            };
            Ok(Parts::new(account_id, customer, Change::Order { order }))
        }
        other => Ok(Parts::ignored(format!(
            "checkout session {} is in {other} mode, which bills nothing",
            session.id
        ))),
    }
}

// --- Subscriptions ------------------------------------------------------------

#[derive(Deserialize)]
struct StripeSubscription {
    id: String,
    status: String,
    customer: Expandable,
    #[serde(default)]
    cancel_at_period_end: bool,
    #[serde(default)]
    cancel_at: Option<i64>,
    #[serde(default)]
    currency: Option<String>,
    /// Before 2025-03-31.basil; since then on each item.
    #[serde(default)]
    current_period_start: Option<i64>,
    #[serde(default)]
    current_period_end: Option<i64>,
    #[serde(default)]
    trial_start: Option<i64>,
    #[serde(default)]
    trial_end: Option<i64>,
    #[serde(default)]
    metadata: Option<Metadata>,
    items: List<Item>,
}

#[derive(Deserialize)]
struct List<T> {
    data: Vec<T>,
}

#[derive(Deserialize)]
struct Item {
    price: Price,
    /// Absent for metered prices.
    #[serde(default)]
    quantity: Option<i64>,
    #[serde(default)]
    current_period_start: Option<i64>,
    #[serde(default)]
    current_period_end: Option<i64>,
}

#[derive(Deserialize)]
struct Price {
    id: String,
    #[serde(default)]
    product: Option<Expandable>,
    #[serde(default)]
    unit_amount: Option<i64>,
    #[serde(default)]
    recurring: Option<Recurring>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Recurring {
    interval: String,
    #[serde(default)]
    interval_count: Option<i64>,
    #[serde(default)]
    usage_type: Option<String>,
}

/// metered: the price bills usage; per_seat: our price metadata says so
/// (`metadata.item_type = per_seat`); flat otherwise.
fn item_type(price: &Price) -> &'static str {
    let usage = price
        .recurring
        .as_ref()
        .and_then(|r| r.usage_type.as_deref());
    if usage == Some("metered") {
        "metered"
    } else if price
        .metadata
        .as_ref()
        .and_then(|m| m.get("item_type"))
        .is_some_and(|t| t == "per_seat")
    {
        "per_seat"
    } else {
        "flat"
    }
}

fn subscription(sub: StripeSubscription) -> Result<Parts, String> {
    let first = sub.items.data.first();
    let period_start = sub
        .current_period_start
        .or_else(|| first.and_then(|item| item.current_period_start));
    let period_end = sub
        .current_period_end
        .or_else(|| first.and_then(|item| item.current_period_end));
    let items = sub
        .items
        .data
        .iter()
        .map(|item| SubscriptionItem {
            product_id: item.price.product.as_ref().map(|p| p.id().to_owned()),
            variant_id: item.price.id.clone(),
            item_type: item_type(&item.price).to_owned(),
            // Metered items have no quantity; one row of the price.
            quantity: item.quantity.unwrap_or(1),
            interval: item.price.recurring.as_ref().map(|r| r.interval.clone()),
            interval_count: item.price.recurring.as_ref().and_then(|r| r.interval_count),
            price_amount: item.price.unit_amount,
        })
        .collect();
    let subscription = Subscription {
        // A cancellation scheduled with `cancel_at` (what the portal and
        // flexible billing mode set instead of `cancel_at_period_end`) also
        // means the subscription will not renew.
        cancel_at_period_end: sub.cancel_at_period_end
            || (sub.cancel_at.is_some() && sub.status != "canceled"),
        currency: currency(sub.currency),
        period_starts_at: unix_field(period_start, "current_period_start")?,
        period_ends_at: unix_field(period_end, "current_period_end")?,
        trial_starts_at: unix_field(sub.trial_start, "trial_start")?,
        trial_ends_at: unix_field(sub.trial_end, "trial_end")?,
        items,
        id: sub.id,
        active: gives_access(&sub.status),
        status: sub.status,
    };
    Ok(Parts::new(
        metadata_account(sub.metadata.as_ref()),
        customer(Some(sub.customer), None),
        Change::Subscription { subscription },
    ))
}

// --- Invoices -------------------------------------------------------------------

#[derive(Deserialize)]
struct Invoice {
    id: String,
    #[serde(default)]
    customer: Option<Expandable>,
    #[serde(default)]
    customer_email: Option<String>,
    /// Before 2025-03-31.basil.
    #[serde(default)]
    subscription: Option<Expandable>,
    /// Before 2025-03-31.basil: the subscription's metadata.
    #[serde(default)]
    subscription_details: Option<SubscriptionDetails>,
    #[serde(default)]
    parent: Option<InvoiceParent>,
    lines: List<Line>,
}

#[derive(Deserialize)]
struct InvoiceParent {
    #[serde(default)]
    subscription_details: Option<SubscriptionDetails>,
}

#[derive(Deserialize)]
struct SubscriptionDetails {
    #[serde(default)]
    subscription: Option<Expandable>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    quantity: Option<i64>,
    /// Before 2025-03-31.basil.
    #[serde(default)]
    price: Option<LinePrice>,
    #[serde(default)]
    proration: Option<bool>,
    #[serde(default)]
    pricing: Option<Pricing>,
    #[serde(default)]
    parent: Option<LineParent>,
}

#[derive(Deserialize)]
struct LinePrice {
    id: String,
}

#[derive(Deserialize)]
struct Pricing {
    #[serde(default)]
    price_details: Option<PriceDetails>,
}

#[derive(Deserialize)]
struct PriceDetails {
    #[serde(default)]
    price: Option<Expandable>,
}

#[derive(Deserialize)]
struct LineParent {
    #[serde(default)]
    subscription_item_details: Option<LineItemDetails>,
}

#[derive(Deserialize)]
struct LineItemDetails {
    #[serde(default)]
    proration: Option<bool>,
}

impl Line {
    fn price_id(&self) -> Option<String> {
        let new = self
            .pricing
            .as_ref()
            .and_then(|p| p.price_details.as_ref())
            .and_then(|d| d.price.as_ref())
            .map(|p| p.id().to_owned());
        non_empty(new.or_else(|| self.price.as_ref().map(|p| p.id.clone())))
    }

    fn is_proration(&self) -> bool {
        let new = self
            .parent
            .as_ref()
            .and_then(|p| p.subscription_item_details.as_ref())
            .and_then(|d| d.proration);
        new.or(self.proration).unwrap_or(false)
    }
}

fn invoice_paid(invoice: Invoice) -> Result<Parts, String> {
    let details = invoice
        .parent
        .and_then(|parent| parent.subscription_details)
        .or(invoice.subscription_details);
    let subscription_id = details
        .as_ref()
        .and_then(|d| d.subscription.as_ref())
        .or(invoice.subscription.as_ref())
        .map(|s| s.id().to_owned());
    let Some(subscription_id) = non_empty(subscription_id) else {
        return Ok(Parts::ignored(format!(
            "invoice {} does not belong to a subscription",
            invoice.id
        )));
    };
    // Prorations (a plan changed mid-period) are not a period paid for.
    let items = invoice
        .lines
        .data
        .iter()
        .filter(|line| !line.is_proration())
        .filter_map(|line| {
            line.price_id().map(|variant_id| PaidItem {
                variant_id,
                quantity: line.quantity.unwrap_or(1),
            })
        })
        .collect();
    let payment = Payment {
        subscription_id,
        reference: invoice.id,
        items: Some(items),
    };
    Ok(Parts::new(
        metadata_account(details.as_ref().and_then(|d| d.metadata.as_ref())),
        customer(invoice.customer, invoice.customer_email),
        Change::Payment { payment },
    ))
}
