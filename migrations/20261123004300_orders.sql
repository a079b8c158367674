/*
 * Tables: public.orders and public.order_items
 *
 * One-off purchases (credit packs and the like) as their provider last
 * reported them. Written only by public.upsert_order (through
 * billing-webhook, service_role); read by the account's members. An order
 * never goes back from succeeded or failed to pending, and last_event_at
 * orders events as for subscriptions.
 */
create table if not exists public.orders (
  id text primary key
    constraint orders_id_format check (char_length(id) between 1 and 255),
  account_id uuid not null references public.accounts (id) on delete cascade,
  billing_customer_id bigint references public.billing_customers (id) on delete set null,
  status public.payment_status not null,
  billing_provider public.billing_provider not null,
  total_amount numeric
    constraint orders_total_amount_not_negative check (total_amount >= 0),
  currency varchar(3)
    constraint orders_currency_format check (currency ~ '^[A-Z]{3}$'),
  last_event_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

comment on table public.orders is 'One-off purchases; id is the provider''s (Stripe Checkout Session, Lemon Squeezy order, Paddle transaction). Members read; written by upsert_order (service_role).';
comment on column public.orders.total_amount is 'What was charged, in the currency''s minor unit.';
comment on column public.orders.last_event_at is 'The provider''s time of the last event applied; older events are stale.';

create index if not exists ix_orders_account_id on public.orders (account_id);
create index if not exists ix_orders_billing_customer_id on public.orders (billing_customer_id);

create table if not exists public.order_items (
  order_id text not null references public.orders (id) on delete cascade,
  product_id text
    constraint order_items_product_id_format check (char_length(product_id) between 1 and 255),
  variant_id text not null
    constraint order_items_variant_id_format check (char_length(variant_id) between 1 and 255),
  quantity integer not null default 1
    constraint order_items_quantity_positive check (quantity > 0),
  price_amount numeric
    constraint order_items_price_amount_not_negative check (price_amount >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (order_id, variant_id)
);

comment on table public.order_items is 'What an order bought: the provider''s price or variant id and how many. Members read.';

revoke all on table public.orders, public.order_items from public, anon, authenticated, service_role;
grant select on table public.orders, public.order_items to authenticated;
grant select, insert, update, delete on table public.orders, public.order_items to service_role;

alter table public.orders enable row level security;
alter table public.order_items enable row level security;

create policy "Orders are viewable by the account's members"
  on public.orders
  for select
  to authenticated
  using (account_id = (select auth.uid()) or public.has_role_on_account(account_id));

create policy "Order items are viewable with their order"
  on public.order_items
  for select
  to authenticated
  using (exists (
    select 1 from public.orders parent where parent.id = order_items.order_id
  ));

create trigger set_orders_timestamps
  before update on public.orders
  for each row execute function kit.set_timestamps();

create trigger set_order_items_timestamps
  before update on public.order_items
  for each row execute function kit.set_timestamps();
