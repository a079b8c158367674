//! The provider-neutral event the function hands to the database.
//!
//! Each provider's payload is read into one [`Event`]; the database function
//! `public.apply_billing_event(p_event jsonb)` records and applies it in one
//! transaction. This type *is* that function's input: its JSON shape is the
//! contract between the two (see the migration's comment), so field names
//! here are the SQL names.

use serde::Serialize;

/// The `billing_provider` enum in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    Stripe,
    LemonSqueezy,
    Paddle,
}

/// Active or trialing: what gives access under Stripe's and Paddle's statuses.
pub fn gives_access(status: &str) -> bool {
    matches!(status, "active" | "trialing")
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Stripe => "stripe",
            Provider::LemonSqueezy => "lemon-squeezy",
            Provider::Paddle => "paddle",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub provider: Provider,
    /// Unique per provider; a second delivery with the same id is a duplicate.
    pub event_id: String,
    /// The provider's own event name (`customer.subscription.updated`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// When the provider says the change happened (RFC 3339, UTC). Orders the
    /// changes to one subscription or order: an older event than the last one
    /// applied is stale.
    pub occurred_at: String,
    /// The account the payload names (Stripe `client_reference_id` or
    /// `metadata.account_id`, Lemon Squeezy `meta.custom_data.account_id`,
    /// Paddle `custom_data.account_id`). When absent the database looks the
    /// account up from the customer or the subscription.
    pub account_id: Option<String>,
    pub customer: Option<Customer>,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Customer {
    pub customer_id: String,
    pub email: Option<String>,
}

/// What the event does to the billing tables.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// The subscription as it is now, items included (items not listed are
    /// deleted).
    Subscription { subscription: Subscription },
    /// A one-off purchase as it is now.
    Order { order: Order },
    /// A subscription period was paid (Stripe `invoice.paid`, Lemon Squeezy
    /// `subscription_payment_success`, Paddle `transaction.completed` of a
    /// subscription): grants the plan's renewal credits, once per reference.
    Payment { payment: Payment },
    /// Only links the customer to the account (Stripe checkout in
    /// subscription mode: the subscription arrives in its own event).
    Customer,
    /// Recorded, nothing to apply.
    Ignored { reason: String },
    /// A verified payload this function cannot read: recorded as failed (with
    /// the error) and left for a redelivery, the provider being told 422.
    Invalid { error: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subscription {
    pub id: String,
    /// The `subscription_status` enum: active, trialing, past_due, canceled,
    /// unpaid, incomplete, incomplete_expired, paused, expired.
    pub status: String,
    /// Whether the subscription gives access now: active or trialing, and for
    /// Lemon Squeezy also `cancelled`, which runs on until `ends_at` (its
    /// `subscription_expired` ends it). Decided per provider, so here.
    pub active: bool,
    pub cancel_at_period_end: bool,
    /// ISO 4217, upper case.
    pub currency: Option<String>,
    pub period_starts_at: Option<String>,
    pub period_ends_at: Option<String>,
    pub trial_starts_at: Option<String>,
    pub trial_ends_at: Option<String>,
    pub items: Vec<SubscriptionItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubscriptionItem {
    pub product_id: Option<String>,
    /// The provider's price (Stripe, Paddle) or variant (Lemon Squeezy) id.
    pub variant_id: String,
    /// The `subscription_item_type` enum: flat, per_seat, metered.
    #[serde(rename = "type")]
    pub item_type: String,
    pub quantity: i64,
    /// day, week, month, year; None when the payload does not say.
    pub interval: Option<String>,
    pub interval_count: Option<i64>,
    /// Unit price in the currency's minor unit.
    pub price_amount: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Order {
    pub id: String,
    /// The `payment_status` enum: pending, succeeded, failed.
    pub status: String,
    /// In the currency's minor unit.
    pub total_amount: Option<i64>,
    pub currency: Option<String>,
    pub items: Vec<OrderItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderItem {
    pub product_id: Option<String>,
    pub variant_id: String,
    pub quantity: i64,
    pub price_amount: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Payment {
    pub subscription_id: String,
    /// The invoice or transaction paid; renewal credits are granted once per
    /// `<provider>:<reference>`.
    pub reference: String,
    /// The prices paid for, when the payload lists them (Stripe, Paddle);
    /// None means "the subscription's stored items" (Lemon Squeezy).
    pub items: Option<Vec<PaidItem>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaidItem {
    pub variant_id: String,
    pub quantity: i64,
}
