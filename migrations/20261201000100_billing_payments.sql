/*
 * Billing payments and their reversals: what each paid bill granted, and
 * the refunds, disputes and chargebacks that take it back.
 *
 * Written only by public.apply_billing_event (billing-webhook,
 * service_role), through the credit policy in the next migration.
 *
 *   - billing_payments: one row per paid order or subscription bill
 *     (invoice, transaction), with what was charged, the credits it granted
 *     and the credits taken back so far. Members of the account read it:
 *     it is their billing history, refunds included.
 *   - billing_payment_keys: the ids refunds and disputes name a payment by
 *     (Stripe's payment intent and charge, Paddle's transaction, Lemon
 *     Squeezy's order or invoice), each pointing at the payment's
 *     reference once it is known. Its rows are also the lock that makes a
 *     refund and the purchase it refunds, arriving together, meet.
 *   - billing_reversals: each refund, dispute or adjustment by its
 *     provider id, in its latest state; kept even before the payment it
 *     names arrives, and applied then.
 *
 * billing_events also keeps the API version and the delivery id now.
 */

alter table public.billing_events
  add column if not exists api_version text
    constraint billing_events_api_version_format check (char_length(api_version) between 1 and 64),
  add column if not exists notification_id text
    constraint billing_events_notification_id_format check (char_length(notification_id) between 1 and 255);

comment on column public.billing_events.api_version is 'The API version the payload was rendered in (Stripe''s api_version), when the provider says.';
comment on column public.billing_events.notification_id is 'The provider''s id of the last delivery, when it has one apart from the event id (Paddle''s notification_id).';

/*
 * Table: public.billing_payments
 */
create table if not exists public.billing_payments (
  provider public.billing_provider not null,
  reference text not null
    constraint billing_payments_reference_format check (char_length(reference) between 1 and 255),
  account_id uuid not null references public.accounts (id) on delete cascade,
  -- Who received the credits; they go back from the same user, whoever
  -- owns the account by the time of the refund.
  user_id uuid references public.profiles (id) on delete set null,
  subscription_id text
    constraint billing_payments_subscription_id_format check (char_length(subscription_id) between 1 and 255),
  amount bigint not null
    constraint billing_payments_amount_not_negative check (amount >= 0),
  currency varchar(3)
    constraint billing_payments_currency_format check (currency ~ '^[A-Z]{3}$'),
  billing_reason text
    constraint billing_payments_billing_reason_format check (char_length(billing_reason) between 1 and 64),
  credits_granted integer not null default 0
    constraint billing_payments_credits_granted_not_negative check (credits_granted >= 0),
  amount_refunded bigint not null default 0
    constraint billing_payments_amount_refunded_not_negative check (amount_refunded >= 0),
  amount_disputed bigint not null default 0
    constraint billing_payments_amount_disputed_not_negative check (amount_disputed >= 0),
  credits_taken_back integer not null default 0,
  reversal_entries integer not null default 0
    constraint billing_payments_reversal_entries_not_negative check (reversal_entries >= 0),
  paid_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (provider, reference),
  constraint billing_payments_taken_back_within_granted check (
    credits_taken_back between 0 and credits_granted
  )
);

comment on table public.billing_payments is 'Each paid order or subscription bill: what was charged, the credits it granted and those refunds and disputes took back. Members read; written by apply_billing_event (service_role).';
comment on column public.billing_payments.reference is 'The provider''s order or bill id: a Stripe Checkout Session or invoice, a Paddle transaction, a Lemon Squeezy order or subscription invoice.';
comment on column public.billing_payments.amount is 'What was charged, in the currency''s minor unit, after discounts.';
comment on column public.billing_payments.credits_granted is 'Credits this payment granted (purchase and renewal), as the ledger has them.';
comment on column public.billing_payments.amount_refunded is 'How much of amount was refunded, as the latest refunds say.';
comment on column public.billing_payments.amount_disputed is 'How much of amount a dispute or chargeback holds (open or lost).';
comment on column public.billing_payments.credits_taken_back is 'Credits taken back now for the refunds and disputes, net of those restored.';
comment on column public.billing_payments.reversal_entries is 'How many billing_reversal and billing_restore ledger rows this payment has (they are numbered).';

create index if not exists ix_billing_payments_account_id on public.billing_payments (account_id);
create index if not exists ix_billing_payments_user_id on public.billing_payments (user_id);

revoke all on table public.billing_payments from public, anon, authenticated, service_role;
grant select on table public.billing_payments to authenticated;
grant select, insert, update, delete on table public.billing_payments to service_role;

alter table public.billing_payments enable row level security;

create policy "Billing payments are viewable by the account's members"
  on public.billing_payments
  for select
  to authenticated
  using (account_id = (select auth.uid()) or public.has_role_on_account(account_id));

create trigger set_billing_payments_timestamps
  before update on public.billing_payments
  for each row execute function kit.set_timestamps();

/*
 * Table: public.billing_payment_keys
 */
create table if not exists public.billing_payment_keys (
  provider public.billing_provider not null,
  key text not null
    constraint billing_payment_keys_key_format check (char_length(key) between 1 and 255),
  -- Null while only a refund or dispute has named the key.
  reference text
    constraint billing_payment_keys_reference_format check (char_length(reference) between 1 and 255),
  created_at timestamptz not null default now(),
  primary key (provider, key)
);

comment on table public.billing_payment_keys is 'The ids refunds and disputes name a payment by, and the payment (reference) each belongs to once known. service_role only.';

create index if not exists ix_billing_payment_keys_reference on public.billing_payment_keys (provider, reference);

revoke all on table public.billing_payment_keys from public, anon, authenticated, service_role;
grant select, insert, update, delete on table public.billing_payment_keys to service_role;

alter table public.billing_payment_keys enable row level security;

/*
 * Table: public.billing_reversals
 */
create table if not exists public.billing_reversals (
  provider public.billing_provider not null,
  id text not null
    constraint billing_reversals_id_format check (char_length(id) between 1 and 255),
  kind text not null
    constraint billing_reversals_kind_known check (kind in ('refund', 'refund_reversal', 'dispute', 'dispute_reversal')),
  status text not null
    constraint billing_reversals_status_known check (status in ('pending', 'effective', 'void')),
  amount bigint not null
    constraint billing_reversals_amount_not_negative check (amount >= 0),
  currency varchar(3)
    constraint billing_reversals_currency_format check (currency ~ '^[A-Z]{3}$'),
  -- A running total (Stripe charge.refunded, Lemon Squeezy refunded_amount)
  -- rather than one refund.
  cumulative boolean not null default false,
  payment_keys text[] not null
    constraint billing_reversals_payment_keys_present check (cardinality(payment_keys) between 1 and 10),
  -- The payment it reverses, once recorded.
  reference text
    constraint billing_reversals_reference_format check (char_length(reference) between 1 and 255),
  provider_status text
    constraint billing_reversals_provider_status_format check (char_length(provider_status) between 1 and 64),
  last_event_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (provider, id)
);

comment on table public.billing_reversals is 'Refunds, disputes and chargebacks by their provider id, in their latest state, and the payment each reverses. service_role only.';
comment on column public.billing_reversals.status is 'pending (takes nothing yet), effective (money moved: counts) or void (failed, canceled, rejected, dispute won: counts as nothing).';
comment on column public.billing_reversals.last_event_at is 'The provider''s time of the last event applied to it; older events are stale.';

create index if not exists ix_billing_reversals_reference on public.billing_reversals (provider, reference);
create index if not exists ix_billing_reversals_unresolved on public.billing_reversals using gin (payment_keys) where reference is null;

revoke all on table public.billing_reversals from public, anon, authenticated, service_role;
grant select, insert, update, delete on table public.billing_reversals to service_role;

alter table public.billing_reversals enable row level security;

create trigger set_billing_reversals_timestamps
  before update on public.billing_reversals
  for each row execute function kit.set_timestamps();

/*
 * Orders show what was refunded and disputed of them.
 */
alter table public.orders
  add column if not exists amount_refunded bigint not null default 0
    constraint orders_amount_refunded_not_negative check (amount_refunded >= 0),
  add column if not exists amount_disputed bigint not null default 0
    constraint orders_amount_disputed_not_negative check (amount_disputed >= 0);

comment on column public.orders.amount_refunded is 'How much of the order was refunded, in the currency''s minor unit.';
comment on column public.orders.amount_disputed is 'How much of the order a dispute or chargeback holds (open or lost).';

/*
 * Orders paid before payments were recorded, from what the ledger granted
 * them, so that refunds naming the order itself (Paddle's transaction,
 * Lemon Squeezy's order) take their credits back. Subscription bills and
 * Stripe's payment intents of that time are not known here.
 */
insert into public.billing_payments (
  provider, reference, account_id, user_id, amount, currency, credits_granted, paid_at
)
select o.billing_provider, o.id, o.account_id, t.user_id, greatest(coalesce(o.total_amount, 0), 0)::bigint,
       o.currency, t.amount, o.last_event_at
from public.orders o
join public.credit_transactions t
  on t.reason = 'purchase' and t.reference = o.billing_provider::text || ':' || o.id
where o.status = 'succeeded'
on conflict (provider, reference) do nothing;

insert into public.billing_payment_keys (provider, key, reference)
select p.provider, p.reference, p.reference from public.billing_payments p
on conflict (provider, key) do nothing;
