/*
 * Billing: the types the billing tables share.
 *
 * Subscription statuses are the providers' own (Stripe's set, plus Lemon
 * Squeezy's `expired`); billing-webhook spells Lemon Squeezy's `on_trial`
 * and `cancelled` as `trialing` and `canceled`.
 */
do $$
begin
  if not exists (select 1 from pg_type where typname = 'billing_provider' and typnamespace = 'public'::regnamespace) then
    create type public.billing_provider as enum ('stripe', 'lemon-squeezy', 'paddle');
  end if;
  if not exists (select 1 from pg_type where typname = 'subscription_status' and typnamespace = 'public'::regnamespace) then
    create type public.subscription_status as enum (
      'active', 'trialing', 'past_due', 'canceled', 'unpaid',
      'incomplete', 'incomplete_expired', 'paused', 'expired'
    );
  end if;
  if not exists (select 1 from pg_type where typname = 'payment_status' and typnamespace = 'public'::regnamespace) then
    create type public.payment_status as enum ('pending', 'succeeded', 'failed');
  end if;
  if not exists (select 1 from pg_type where typname = 'subscription_item_type' and typnamespace = 'public'::regnamespace) then
    create type public.subscription_item_type as enum ('flat', 'per_seat', 'metered');
  end if;
  if not exists (select 1 from pg_type where typname = 'billing_event_outcome' and typnamespace = 'public'::regnamespace) then
    create type public.billing_event_outcome as enum ('applied', 'ignored', 'stale', 'failed');
  end if;
end;
$$;

comment on type public.billing_provider is 'The payment providers billing-webhook takes events from.';
comment on type public.subscription_status is 'A subscription''s status as its provider reports it.';
comment on type public.payment_status is 'A one-off order''s payment: pending, succeeded or failed.';
comment on type public.subscription_item_type is 'How an item is charged: flat, per seat (quantity = seats) or metered.';
comment on type public.billing_event_outcome is 'What applying a billing event did: applied, ignored (a type not used), stale (older than what is stored) or failed (kept for a redelivery).';
