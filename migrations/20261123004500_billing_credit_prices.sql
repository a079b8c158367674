/*
 * Table: public.billing_credit_prices
 *
 * Which provider prices (Stripe, Paddle) or variants (Lemon Squeezy) give
 * credits, how many per unit, and when: 'purchase' on a paid one-off order
 * (credit packs), 'renewal' on each paid subscription period, the first
 * included (plans with a monthly allowance). Configuration, written by
 * service_role; readable by signed-in users, so a pricing page can show
 * what a pack gives.
 */
create table if not exists public.billing_credit_prices (
  provider public.billing_provider not null,
  price_id text not null
    constraint billing_credit_prices_price_id_format check (char_length(price_id) between 1 and 255),
  credits integer not null
    constraint billing_credit_prices_credits_positive check (credits > 0),
  grant_on text not null
    constraint billing_credit_prices_grant_on_known check (grant_on in ('purchase', 'renewal')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (provider, price_id)
);

comment on table public.billing_credit_prices is 'Credits per unit a provider price or variant grants, on purchase (one-off) or on renewal (each paid period).';

revoke all on table public.billing_credit_prices from public, anon, authenticated, service_role;
grant select on table public.billing_credit_prices to authenticated;
grant select, insert, update, delete on table public.billing_credit_prices to service_role;

alter table public.billing_credit_prices enable row level security;

create policy "Credit prices are viewable by signed-in users"
  on public.billing_credit_prices
  for select
  to authenticated
  using (true);

create trigger set_billing_credit_prices_timestamps
  before update on public.billing_credit_prices
  for each row execute function kit.set_timestamps();
