//! Stripe events (`POST /webhooks/stripe`) read into one [`Event`].
//!
//! The envelope is Stripe's snapshot Event object: `id`, `type`, `created`
//! (unix seconds: the event's time), `api_version` (the version `data.object`
//! is rendered in, kept on the event) and `data.object`, the object as it is
//! now. A thin event (an event destination with the `thin` payload style:
//! `object: "v2.core.event"`, a `related_object` reference and no
//! `data.object`) has nothing to apply: it is answered 400 with
//! [`THIN_EVENT`], which tells the operator to use snapshot payloads.
//!
//! Events applied:
//!
//! - `checkout.session.completed`, `checkout.session.async_payment_succeeded`,
//!   `checkout.session.async_payment_failed`: in payment mode an order (with
//!   its payment intent, which refunds and disputes name); in subscription
//!   mode only the customer's account;
//! - `customer.subscription.created|updated|deleted`: the subscription;
//! - `invoice.paid`: a payment of the subscription, line by line: a period,
//!   a proration or a one-time item (see [`LineKind`]), with the invoice's
//!   `total` as what was paid;
//! - `invoice_payment.paid` (2025-03-31.basil and later): which payment intent
//!   or charge paid an invoice;
//! - `charge.refunded`: the charge's running refund total (`amount_refunded`);
//! - `refund.created|updated|failed`, `charge.refund.updated`: one refund;
//! - `charge.dispute.created|updated|closed|funds_withdrawn|funds_reinstated`:
//!   one dispute.
//!
//! `invoice.payment_failed` and every other type are recorded and ignored.
//!
//! Objects are read in either shape where fields moved, so the endpoint's API
//! version may be 2024-09-30.acacia (or older), basil, 2025-09-30.clover or
//! 2026-03-25.dahlia and later:
//!
//! - basil moved a subscription's `current_period_start|end` to its items;
//!   an invoice's `subscription` (and `subscription_details`) to
//!   `parent.subscription_details`; removed the invoice's `payment_intent`
//!   and `charge` (`invoice_payment.paid` names them since); replaced a
//!   line's `type` (`subscription` | `invoiceitem`) and `proration` with
//!   `parent.type` (`subscription_item_details` | `invoice_item_details`) and
//!   that parent's `proration`, and its `price.id` with
//!   `pricing.price_details.price`;
//! - clover's flexible billing mode can itemize proration discounts, so a
//!   proration line's `amount` may be before discounts (proration lines grant
//!   nothing either way; the invoice's `total` is what was paid);
//! - dahlia added a line's `quantity_decimal` and deprecated `quantity`:
//!   `quantity` is read, else the whole part of `quantity_decimal`.
//!
//! Which account an event bills: a Checkout Session's `client_reference_id`,
//! else its `metadata.account_id`; a subscription's `metadata.account_id`
//! (set through `subscription_data.metadata` at checkout); an invoice's
//! `parent.subscription_details.metadata.account_id` (the subscription's
//! metadata when the invoice was made). Without one the database looks the
//! account up from the customer or the subscription. Refunds, disputes and
//! invoice payments name no account: the database finds the payment they
//! belong to by its payment intent, charge or invoice.
//!
//! Checkout in payment mode: webhooks do not include line items, so the
//! session must carry what was bought in `metadata.price_id` (and
//! `metadata.quantity`, default 1), which our checkout sets.

use std::collections::HashMap;

use edge_core::Error;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::event::{
    gives_access, Change, Customer, Event, LineKind, Order, OrderItem, PaidLine, Payment,
    PaymentLink, Provider, Reversal, ReversalKind, ReversalStatus, Subscription, SubscriptionItem,
};
use crate::parse::{
    currency, non_empty, null_as_default, read_raw as read, unix_field, unix_to_rfc3339,
    unreadable, Parts,
};

/// The 400's detail for a thin event: it names the object that changed but
/// does not include it, and fetching it back from Stripe is not something
/// this function does (it holds no API key).
pub const THIN_EVENT: &str = "Stripe sent a thin event (object v2.core.event): it names the \
changed object without including it, and this endpoint applies snapshot events only. Configure \
the Stripe event destination for this endpoint with snapshot payloads (event_payload: snapshot).";

/// Reads a verified Stripe event. An unreadable body, one without `id`,
/// `type` or `created`, or a thin event, is [`Error::BadRequest`]; an event
/// we handle whose object lacks what we need is [`Change::Invalid`]; any
/// other type is [`Change::Ignored`].
pub fn parse(body: &[u8]) -> Result<Event, Error> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| unreadable(Provider::Stripe, e))?;
    let object = envelope.data.and_then(|data| data.object);
    // Checked first: a thin event's `created` is an RFC 3339 string, which
    // would otherwise be reported as a bad time.
    if envelope.object.as_deref() == Some("v2.core.event")
        || (envelope.related_object.is_some() && object.is_none())
    {
        return Err(Error::bad_request(THIN_EVENT));
    }
    let (Some(event_id), Some(kind)) = (non_empty(envelope.id), non_empty(envelope.kind)) else {
        return Err(unreadable(
            Provider::Stripe,
            "the event id or type is missing or empty",
        ));
    };
    let occurred_at = envelope
        .created
        .as_ref()
        .and_then(Value::as_i64)
        .and_then(unix_to_rfc3339)
        .ok_or_else(|| unreadable(Provider::Stripe, "`created` is not a time"))?;
    let parts =
        change(&kind, object.as_deref().unwrap_or(RawValue::NULL)).unwrap_or_else(Parts::invalid);
    Ok(Event {
        provider: Provider::Stripe,
        event_id,
        kind,
        occurred_at,
        api_version: non_empty(envelope.api_version),
        notification_id: None,
        account_id: parts.account_id,
        customer: parts.customer,
        change: parts.change,
    })
}

/// Why `invoice.payment_failed` changes nothing here.
pub const PAYMENT_FAILED_REASON: &str =
    "the subscription's state arrives with customer.subscription.updated";

fn change(kind: &str, object: &RawValue) -> Result<Parts, String> {
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
        "invoice_payment.paid" => invoice_payment_paid(read(object, "invoice payment")?),
        "charge.refunded" => charge_refunded(read(object, "charge")?),
        "refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated" => {
            refund(read(object, "refund")?)
        }
        "charge.dispute.created"
        | "charge.dispute.updated"
        | "charge.dispute.closed"
        | "charge.dispute.funds_withdrawn"
        | "charge.dispute.funds_reinstated" => dispute(read(object, "dispute")?),
        other => Ok(Parts::ignored(format!(
            "stripe event type {other} is not one this function applies"
        ))),
    }
}

/// Lenient, so that a thin event (whose `created` is a string) can be told
/// apart before the fields a snapshot event must have are checked.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    id: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    /// Unix seconds.
    #[serde(default)]
    created: Option<Value>,
    /// `event`; a thin event's is `v2.core.event`.
    #[serde(default)]
    object: Option<String>,
    #[serde(default)]
    api_version: Option<String>,
    /// Only in thin events: a reference to the object instead of the object.
    #[serde(default)]
    related_object: Option<IgnoredAny>,
    #[serde(default)]
    data: Option<EventData>,
}

#[derive(Deserialize)]
struct EventData {
    /// Kept as its JSON text and read straight into the type the event's
    /// `type` calls for.
    #[serde(default)]
    object: Option<Box<RawValue>>,
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

/// The id of an expandable field that may be `null` or absent.
fn id_of(field: &Option<Expandable>) -> Option<&str> {
    field.as_ref().map(Expandable::id)
}

/// The ids a refund or dispute may name a payment by (payment intent,
/// charge), in order, each once; absent (`null`) ones left out.
fn payment_keys<'a>(ids: impl IntoIterator<Item = Option<&'a str>>) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for id in ids.into_iter().flatten() {
        if !id.trim().is_empty() && !keys.iter().any(|key| key == id) {
            keys.push(id.to_owned());
        }
    }
    keys
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
    /// Payment mode: what a refund or dispute of the order names.
    #[serde(default)]
    payment_intent: Option<Expandable>,
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
                payment_keys: payment_keys([id_of(&session.payment_intent)]),
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
    #[serde(default, deserialize_with = "null_as_default")]
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
    /// What was charged, after discounts and credits: 0 for a trial's first
    /// invoice or a 100 %-off coupon.
    total: i64,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    billing_reason: Option<String>,
    /// Before 2025-03-31.basil.
    #[serde(default)]
    subscription: Option<Expandable>,
    /// Before 2025-03-31.basil: the subscription's metadata.
    #[serde(default)]
    subscription_details: Option<SubscriptionDetails>,
    /// Before 2025-03-31.basil: the payment; since then it is named by
    /// `invoice_payment.paid`.
    #[serde(default)]
    payment_intent: Option<Expandable>,
    #[serde(default)]
    charge: Option<Expandable>,
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
    amount: Option<i64>,
    #[serde(default)]
    quantity: Option<i64>,
    /// Since 2026-03-25.dahlia, beside the deprecated `quantity`.
    #[serde(default)]
    quantity_decimal: Option<String>,
    /// Before 2025-03-31.basil: `subscription` or `invoiceitem`.
    #[serde(default, rename = "type")]
    kind: Option<String>,
    /// Before 2025-03-31.basil.
    #[serde(default, deserialize_with = "null_as_default")]
    proration: bool,
    /// Before 2025-03-31.basil.
    #[serde(default)]
    price: Option<LinePrice>,
    #[serde(default)]
    pricing: Option<Pricing>,
    #[serde(default)]
    parent: Option<LineParent>,
}

#[derive(Deserialize)]
struct LinePrice {
    id: String,
    #[serde(default)]
    product: Option<Expandable>,
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
    #[serde(default)]
    product: Option<Expandable>,
}

/// Since 2025-03-31.basil: what made the line. Both details may be present;
/// `type` says which one applies.
#[derive(Deserialize)]
struct LineParent {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    subscription_item_details: Option<LineDetails>,
    #[serde(default)]
    invoice_item_details: Option<LineDetails>,
}

#[derive(Deserialize)]
struct LineDetails {
    #[serde(default, deserialize_with = "null_as_default")]
    proration: bool,
}

impl Line {
    fn price_id(&self) -> Option<String> {
        let new = self
            .pricing
            .as_ref()
            .and_then(|p| p.price_details.as_ref())
            .and_then(|d| id_of(&d.price));
        let old = self.price.as_ref().map(|p| p.id.as_str());
        non_empty(new.or(old).map(str::to_owned))
    }

    fn product_id(&self) -> Option<String> {
        let new = self
            .pricing
            .as_ref()
            .and_then(|p| p.price_details.as_ref())
            .and_then(|d| id_of(&d.product));
        let old = self.price.as_ref().and_then(|p| id_of(&p.product));
        non_empty(new.or(old).map(str::to_owned))
    }

    /// Stripe sets `quantity` to `quantity_decimal` truncated; so do we when
    /// only the decimal is sent.
    fn quantity(&self) -> i64 {
        self.quantity
            .or_else(|| {
                let decimal = self.quantity_decimal.as_deref()?;
                decimal.split('.').next()?.trim().parse().ok()
            })
            .unwrap_or(1)
    }

    /// A proration (either way: the credit for unused time or the charge for
    /// the new plan) grants nothing; a subscription item's line is a period;
    /// an invoice item's (not a proration) is a one-time purchase. Since
    /// basil prorations are usually invoice items, so the proration flag is
    /// read from whichever parent `parent.type` names.
    fn kind(&self) -> LineKind {
        let (source, proration) = match &self.parent {
            Some(parent) => {
                let source = parent.kind.as_deref();
                let details = match source {
                    Some("subscription_item_details") => parent.subscription_item_details.as_ref(),
                    Some("invoice_item_details") => parent.invoice_item_details.as_ref(),
                    _ => None,
                };
                (source, details.is_some_and(|d| d.proration))
            }
            None => (self.kind.as_deref(), self.proration),
        };
        match source {
            _ if proration => LineKind::Proration,
            Some("subscription_item_details" | "subscription") => LineKind::Period,
            Some("invoice_item_details" | "invoiceitem") => LineKind::OneTime,
            // A line from a source this parser does not know: granting
            // nothing for it is the mistake that costs no money.
            _ => LineKind::Proration,
        }
    }
}

fn invoice_paid(invoice: Invoice) -> Result<Parts, String> {
    let details = invoice
        .parent
        .and_then(|parent| parent.subscription_details)
        .or(invoice.subscription_details);
    let subscription_id = details
        .as_ref()
        .and_then(|d| id_of(&d.subscription))
        .or(id_of(&invoice.subscription))
        .map(str::to_owned);
    let Some(subscription_id) = non_empty(subscription_id) else {
        return Ok(Parts::ignored(format!(
            "invoice {} does not belong to a subscription",
            invoice.id
        )));
    };
    // Lines without a price (none we sell) have nothing to grant.
    let lines = invoice
        .lines
        .data
        .iter()
        .filter_map(|line| {
            line.price_id().map(|variant_id| PaidLine {
                product_id: line.product_id(),
                variant_id,
                quantity: line.quantity(),
                amount: line.amount,
                kind: line.kind(),
            })
        })
        .collect();
    let payment = Payment {
        subscription_id,
        payment_keys: payment_keys([id_of(&invoice.payment_intent), id_of(&invoice.charge)]),
        reference: invoice.id,
        billing_reason: non_empty(invoice.billing_reason),
        amount: invoice.total,
        currency: currency(invoice.currency),
        lines: Some(lines),
    };
    Ok(Parts::new(
        metadata_account(details.as_ref().and_then(|d| d.metadata.as_ref())),
        customer(invoice.customer, invoice.customer_email),
        Change::Payment { payment },
    ))
}

// --- Invoice payments (2025-03-31.basil and later) ------------------------------

#[derive(Deserialize)]
struct InvoicePayment {
    id: String,
    invoice: Expandable,
    payment: AssociatedPayment,
}

/// One of these is set, by `payment.type`; a `payment_record` (a payment made
/// outside Stripe) has neither, and nothing of ours can refund it.
#[derive(Deserialize)]
struct AssociatedPayment {
    #[serde(default)]
    payment_intent: Option<Expandable>,
    #[serde(default)]
    charge: Option<Expandable>,
}

fn invoice_payment_paid(paid: InvoicePayment) -> Result<Parts, String> {
    let keys = payment_keys([
        id_of(&paid.payment.payment_intent),
        id_of(&paid.payment.charge),
    ]);
    if keys.is_empty() {
        return Ok(Parts::ignored(format!(
            "invoice payment {} names no payment intent or charge",
            paid.id
        )));
    }
    let link = PaymentLink {
        reference: paid.invoice.id().to_owned(),
        payment_keys: keys,
    };
    Ok(Parts::new(None, None, Change::PaymentLink { link }))
}

// --- Refunds and disputes -------------------------------------------------------

/// `charge.refunded`: the charge with its running refund total.
#[derive(Deserialize)]
struct Charge {
    id: String,
    amount_refunded: i64,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    payment_intent: Option<Expandable>,
}

#[derive(Deserialize)]
struct Refund {
    id: String,
    amount: i64,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    payment_intent: Option<Expandable>,
    #[serde(default)]
    charge: Option<Expandable>,
}

#[derive(Deserialize)]
struct Dispute {
    id: String,
    amount: i64,
    #[serde(default)]
    currency: Option<String>,
    status: String,
    #[serde(default)]
    payment_intent: Option<Expandable>,
    charge: Expandable,
}

/// The charge's `amount_refunded` is the sum of all its refunds so far; the
/// database keeps the largest total seen rather than adding them up.
fn charge_refunded(charge: Charge) -> Result<Parts, String> {
    reversal(Reversal {
        id: format!("total:{}", charge.id),
        payment_keys: payment_keys([id_of(&charge.payment_intent), Some(charge.id.as_str())]),
        kind: ReversalKind::Refund,
        amount: charge.amount_refunded,
        currency: currency(charge.currency),
        status: ReversalStatus::Effective,
        cumulative: true,
        provider_status: None,
    })
}

fn refund(refund: Refund) -> Result<Parts, String> {
    let status = match refund.status.as_deref() {
        Some("failed" | "canceled") => ReversalStatus::Void,
        // succeeded, pending, requires_action (and any status to come): the
        // credits go back when the merchant starts the refund, and return
        // if it fails or is canceled.
        _ => ReversalStatus::Effective,
    };
    reversal(Reversal {
        payment_keys: payment_keys([id_of(&refund.payment_intent), id_of(&refund.charge)]),
        id: refund.id,
        kind: ReversalKind::Refund,
        amount: refund.amount,
        currency: currency(refund.currency),
        status,
        cumulative: false,
        provider_status: non_empty(refund.status),
    })
}

/// A dispute is one entry whose status moves: Stripe marks it `won` rather
/// than sending a reversal of it.
fn dispute(dispute: Dispute) -> Result<Parts, String> {
    let status = match dispute.status.as_str() {
        // An inquiry: no money has moved yet, and it may close without.
        "warning_needs_response" | "warning_under_review" => ReversalStatus::Pending,
        // Decided for the merchant, or closed before it became a chargeback.
        "won" | "warning_closed" | "prevented" => ReversalStatus::Void,
        // needs_response, under_review, lost: the funds are withdrawn while
        // it runs; so is any status to come, until it says otherwise.
        _ => ReversalStatus::Effective,
    };
    reversal(Reversal {
        payment_keys: payment_keys([id_of(&dispute.payment_intent), Some(dispute.charge.id())]),
        id: dispute.id,
        kind: ReversalKind::Dispute,
        amount: dispute.amount,
        currency: currency(dispute.currency),
        status,
        cumulative: false,
        provider_status: non_empty(Some(dispute.status)),
    })
}

fn reversal(reversal: Reversal) -> Result<Parts, String> {
    if reversal.amount < 0 {
        return Err(format!(
            "{} has a negative amount ({})",
            reversal.id, reversal.amount
        ));
    }
    if reversal.payment_keys.is_empty() {
        return Ok(Parts::ignored(format!(
            "{} names no payment intent or charge",
            reversal.id
        )));
    }
    Ok(Parts::new(None, None, Change::Reversal { reversal }))
}
