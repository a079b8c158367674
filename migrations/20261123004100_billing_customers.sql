/*
 * Table: public.billing_customers
 *
 * Links an account to its customer at a payment provider, so events that
 * name only the customer (Stripe subscription and invoice events, say) find
 * the account. Written by billing-webhook (service_role) when an event names
 * both; read by the account's members.
 */
create table if not exists public.billing_customers (
  id bigint generated always as identity primary key,
  account_id uuid not null references public.accounts (id) on delete cascade,
  provider public.billing_provider not null,
  customer_id text not null
    constraint billing_customers_customer_id_format check (char_length(customer_id) between 1 and 255),
  email text
    constraint billing_customers_email_length check (char_length(email) <= 320),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint billing_customers_account_provider_customer_key unique (account_id, provider, customer_id)
);

comment on table public.billing_customers is 'An account''s customer id at a payment provider. Members read; service_role writes.';
comment on column public.billing_customers.customer_id is 'The provider''s customer id (Stripe cus_..., Lemon Squeezy customer id, Paddle ctm_...).';
comment on column public.billing_customers.email is 'The customer''s email as the provider last reported it, when it did.';

-- Events name the customer, not the account.
create index if not exists ix_billing_customers_provider_customer_id
  on public.billing_customers (provider, customer_id);

revoke all on table public.billing_customers from public, anon, authenticated, service_role;
-- The identity's sequence needs no grant (inserting is enough); Supabase's
-- default privileges would give it to every API role.
revoke all on sequence public.billing_customers_id_seq from public, anon, authenticated, service_role;
grant select on table public.billing_customers to authenticated;
grant select, insert, update, delete on table public.billing_customers to service_role;

alter table public.billing_customers enable row level security;

create policy "Billing customers are viewable by the account's members"
  on public.billing_customers
  for select
  to authenticated
  using (account_id = (select auth.uid()) or public.has_role_on_account(account_id));

create trigger set_billing_customers_timestamps
  before update on public.billing_customers
  for each row execute function kit.set_timestamps();
