/*
 * Tables: public.subscriptions and public.subscription_items
 *
 * A subscription as its provider last reported it, with its items (one per
 * price or variant). Written only by public.upsert_subscription (through
 * billing-webhook, service_role); read by the account's members.
 *
 * last_event_at is the provider's time of the last event applied: an older
 * event is stale and changes nothing, so deliveries out of order end in the
 * newest state.
 */
create table if not exists public.subscriptions (
  id text primary key
    constraint subscriptions_id_format check (char_length(id) between 1 and 255),
  account_id uuid not null references public.accounts (id) on delete cascade,
  billing_customer_id bigint references public.billing_customers (id) on delete set null,
  status public.subscription_status not null,
  active boolean not null,
  billing_provider public.billing_provider not null,
  cancel_at_period_end boolean not null default false,
  currency varchar(3)
    constraint subscriptions_currency_format check (currency ~ '^[A-Z]{3}$'),
  period_starts_at timestamptz,
  period_ends_at timestamptz,
  trial_starts_at timestamptz,
  trial_ends_at timestamptz,
  last_event_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

comment on table public.subscriptions is 'Recurring subscriptions as their provider reports them; id is the provider''s. Members read; written by upsert_subscription (service_role).';
comment on column public.subscriptions.active is 'Whether the subscription gives access now (active or trialing; for Lemon Squeezy also cancelled, until it expires).';
comment on column public.subscriptions.cancel_at_period_end is 'True when it will not renew: it ends at period_ends_at.';
comment on column public.subscriptions.last_event_at is 'The provider''s time of the last event applied; older events are stale.';

create index if not exists ix_subscriptions_account_id on public.subscriptions (account_id);
create index if not exists ix_subscriptions_billing_customer_id on public.subscriptions (billing_customer_id);

create table if not exists public.subscription_items (
  subscription_id text not null references public.subscriptions (id) on delete cascade,
  product_id text
    constraint subscription_items_product_id_format check (char_length(product_id) between 1 and 255),
  variant_id text not null
    constraint subscription_items_variant_id_format check (char_length(variant_id) between 1 and 255),
  type public.subscription_item_type not null,
  quantity integer not null default 1
    constraint subscription_items_quantity_not_negative check (quantity >= 0),
  interval text
    constraint subscription_items_interval_known check (interval in ('day', 'week', 'month', 'year')),
  interval_count integer
    constraint subscription_items_interval_count_positive check (interval_count > 0),
  price_amount numeric
    constraint subscription_items_price_amount_not_negative check (price_amount >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (subscription_id, variant_id)
);

comment on table public.subscription_items is 'The prices (Stripe, Paddle) or variants (Lemon Squeezy) a subscription pays for, as last reported. Members read.';
comment on column public.subscription_items.variant_id is 'The provider''s price id (Stripe, Paddle) or variant id (Lemon Squeezy).';
comment on column public.subscription_items.price_amount is 'Unit price in the currency''s minor unit, when the provider says.';

revoke all on table public.subscriptions, public.subscription_items from public, anon, authenticated, service_role;
grant select on table public.subscriptions, public.subscription_items to authenticated;
grant select, insert, update, delete on table public.subscriptions, public.subscription_items to service_role;

alter table public.subscriptions enable row level security;
alter table public.subscription_items enable row level security;

create policy "Subscriptions are viewable by the account's members"
  on public.subscriptions
  for select
  to authenticated
  using (account_id = (select auth.uid()) or public.has_role_on_account(account_id));

-- Through the parent row, whose own policy applies inside the subquery.
create policy "Subscription items are viewable with their subscription"
  on public.subscription_items
  for select
  to authenticated
  using (exists (
    select 1 from public.subscriptions subscription
    where subscription.id = subscription_items.subscription_id
  ));

create trigger set_subscriptions_timestamps
  before update on public.subscriptions
  for each row execute function kit.set_timestamps();

create trigger set_subscription_items_timestamps
  before update on public.subscription_items
  for each row execute function kit.set_timestamps();
