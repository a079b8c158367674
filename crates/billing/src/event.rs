//! The provider-neutral event the function hands to the database.
//!
//! Each provider's payload is read into one [`Event`]; the database function
//! `public.apply_billing_event(p_event jsonb)` records and applies it in one
//! transaction. This type *is* that function's input: its JSON shape is the
//! contract between the two (see the migration's comment), so field names
//! here are the SQL names.

use serde::Serialize;

/// The `billing_provider` enum in SQL; each is described once, in
/// [`crate::providers::PROVIDERS`].
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
    /// The API version the payload was rendered in (Stripe's `api_version`);
    /// kept on the recorded event, since field shapes differ between versions.
    pub api_version: Option<String>,
    /// The provider's id of this delivery when it has one apart from the
    /// event id (Paddle's `notification_id`); kept on the recorded event.
    pub notification_id: Option<String>,
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
    /// Money given back or taken back: a refund, a dispute or chargeback, or
    /// a dispute's reversal. Takes back the credits of the payment it names,
    /// in proportion (see the README's credit policy).
    Reversal { reversal: Reversal },
    /// Only says which payment ids belong to an invoice (Stripe's
    /// `invoice_payment.paid`: since 2025-03-31.basil the invoice itself no
    /// longer names its payment intent), so refunds of them find it.
    PaymentLink { link: PaymentLink },
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
    /// In the currency's minor unit: what was charged, after discounts.
    pub total_amount: Option<i64>,
    pub currency: Option<String>,
    pub items: Vec<OrderItem>,
    /// The ids a refund or dispute of this order names besides the order id
    /// itself (Stripe: the Checkout Session's payment intent).
    pub payment_keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderItem {
    pub product_id: Option<String>,
    pub variant_id: String,
    pub quantity: i64,
    pub price_amount: Option<i64>,
}

/// A bill of a subscription was paid: an invoice (Stripe), a transaction
/// (Paddle) or a subscription invoice (Lemon Squeezy). What it grants is the
/// database's decision (`kit.apply_credit_policy`), from the facts here.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Payment {
    pub subscription_id: String,
    /// The invoice or transaction paid; credits are granted once per
    /// `<provider>:<reference>`.
    pub reference: String,
    /// Why the provider billed, in its own words (Stripe `billing_reason`,
    /// Paddle `origin`, Lemon Squeezy `billing_reason`); kept for operators.
    /// The parser has already turned it into each line's [`LineKind`].
    pub billing_reason: Option<String>,
    /// What was charged, in minor units, after discounts (Stripe `total`,
    /// Paddle `details.totals.total`, Lemon Squeezy `total`). Zero for a
    /// trial's first bill or a 100 %-off coupon: such a bill grants nothing.
    pub amount: i64,
    pub currency: Option<String>,
    /// The ids a refund or dispute of this payment names besides the
    /// reference itself (Stripe before basil: the invoice's payment intent
    /// and charge).
    pub payment_keys: Vec<String>,
    /// What was paid for, line by line. None: the subscription's stored
    /// items, each a full period (Lemon Squeezy invoices list no variants).
    pub lines: Option<Vec<PaidLine>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaidLine {
    pub product_id: Option<String>,
    /// The provider's price (Stripe, Paddle) or variant (Lemon Squeezy) id.
    pub variant_id: String,
    pub quantity: i64,
    /// The line's amount in minor units, when the payload says; a line of 0
    /// (or less: a proration credit) grants nothing.
    pub amount: Option<i64>,
    pub kind: LineKind,
}

/// What a paid line is, for the credit policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// A full period of a recurring price: the first one or a renewal.
    /// Grants the price's `renewal` credits.
    Period,
    /// A proration or other partial charge or credit of a plan change: not
    /// a period paid for. Grants nothing; the new plan's credits come with
    /// its next full period.
    Proration,
    /// A one-time price bought with the subscription's bill. Grants its
    /// `purchase` credits and is kept as an order.
    OneTime,
}

/// A refund, a dispute (chargeback) or a reversal of one, as it is now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reversal {
    /// The provider's id of the refund, dispute or adjustment; each is
    /// counted once, in its latest state. A total the provider reports only
    /// as a running sum is `total:<what it is the total of>`: Stripe
    /// `charge.refunded`'s `amount_refunded` per charge (`total:<charge id>`:
    /// a payment intent may have several charges), Lemon Squeezy's
    /// `refunded_amount` per order or invoice.
    pub id: String,
    /// The ids of the payment it reverses (Stripe: payment intent and charge;
    /// Paddle: the transaction; Lemon Squeezy: the order or the subscription
    /// invoice). The first one found among the recorded payments is the one.
    pub payment_keys: Vec<String>,
    pub kind: ReversalKind,
    /// In minor units, of the payment's currency; never negative.
    pub amount: i64,
    pub currency: Option<String>,
    pub status: ReversalStatus,
    /// True for a running total (`total:` ids): the largest total seen counts,
    /// instead of adding up per refund.
    pub cumulative: bool,
    /// The provider's own status word, kept for operators.
    pub provider_status: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReversalKind {
    /// Money given back by the merchant (refunds, Paddle `credit`).
    Refund,
    /// A refund or credit undone (Paddle `credit_reverse`).
    RefundReversal,
    /// Money taken back by the customer's bank (a dispute, a chargeback).
    Dispute,
    /// A dispute decided for the merchant as its own entry (Paddle
    /// `chargeback_reverse`); Stripe marks the dispute itself `won`.
    DisputeReversal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReversalStatus {
    /// Not decided yet (a refund awaiting approval or processing, a dispute
    /// inquiry): takes nothing back yet.
    Pending,
    /// The money moved: a refund succeeded, a dispute is open or lost, a
    /// chargeback or its reversal happened. Counts.
    Effective,
    /// It will not move money: a refund failed, was canceled or rejected, a
    /// dispute was won or its inquiry closed. Counts as nothing (credits
    /// taken back for it return).
    Void,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaymentLink {
    /// The invoice (or transaction) the payment belongs to.
    pub reference: String,
    pub payment_keys: Vec<String>,
}
