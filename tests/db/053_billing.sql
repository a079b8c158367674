-- Billing: who reads and writes the billing tables, and what
-- public.apply_billing_event does with events (recorded once, stale ones
-- change nothing, failures kept for a redelivery, credits granted once).
-- Events are built here the way billing-webhook sends them
-- (crates/billing/src/event.rs); the e2e suite sends the providers' own
-- payloads through the real function.
begin;
create extension if not exists pgtap;
\ir _helpers.psql

create function tests.event(
  event_id text,
  occurred_at text,
  change jsonb,
  account_id uuid default null,
  customer jsonb default null,
  provider text default 'stripe'
)
returns jsonb
language sql
as $$
  select jsonb_strip_nulls(jsonb_build_object(
    'provider', provider, 'event_id', event_id, 'type', 'test.event',
    'occurred_at', occurred_at, 'account_id', account_id, 'customer', customer
  )) || jsonb_build_object('change', change);
$$;

create function tests.subscription(id text, status text, items jsonb)
returns jsonb
language sql
as $$
  select jsonb_build_object('kind', 'subscription', 'subscription', jsonb_build_object(
    'id', id, 'status', status, 'active', status in ('active', 'trialing'),
    'cancel_at_period_end', false, 'currency', 'USD',
    'period_starts_at', '2026-01-01T00:00:00Z', 'period_ends_at', '2026-02-01T00:00:00Z',
    'items', items));
$$;

create function tests.item(variant_id text, quantity int default 1)
returns jsonb
language sql
as $$
  select jsonb_build_object('product_id', 'prod_1', 'variant_id', variant_id, 'type', 'flat',
    'quantity', quantity, 'interval', 'month', 'interval_count', 1, 'price_amount', 1000);
$$;

create function tests.order_change(id text, status text, items jsonb)
returns jsonb
language sql
as $$
  select jsonb_build_object('kind', 'order', 'order', jsonb_build_object(
    'id', id, 'status', status, 'total_amount', 2000, 'currency', 'USD', 'items', items));
$$;

-- apply_billing_event as billing-webhook calls it (service_role), then back.
create function tests.apply(event jsonb)
returns jsonb
language plpgsql
as $$
declare
  answer jsonb;
begin
  perform tests.authenticate_as_service_role();
  answer := public.apply_billing_event(event);
  perform tests.clear_authentication();
  return answer;
end;
$$;

do $$
begin
  perform tests.create_user('owner');
  perform tests.create_user('member');
  perform tests.create_user('outsider');
  perform tests.create_user('solo');
  perform tests.create_team_account('owner', 'billco');
  perform tests.add_member(tests.account_id('billco'), 'member', 'member');
  insert into public.billing_credit_prices (provider, price_id, credits, grant_on) values
    ('stripe', 'price_pack', 100, 'purchase'),
    ('stripe', 'price_plan', 500, 'renewal');
end
$$;

select plan(74);

/*
 * Structure and privileges
 */
select has_table('public', t, 'public.' || t || ' exists')
from unnest(array['billing_customers', 'subscriptions', 'subscription_items', 'orders', 'order_items',
                  'billing_events', 'billing_credit_prices']) t;
select col_is_unique('public', 'billing_customers', array['account_id', 'provider', 'customer_id'],
  'a customer is linked once per account and provider');
select col_is_unique('public', 'billing_events', array['provider', 'event_id'],
  'an event is recorded once per provider');
select col_is_pk('public', 'subscription_items', array['subscription_id', 'variant_id'],
  'a subscription lists each price once');

select table_privs_are('public', t, 'anon', array[]::text[], 'anon has nothing on ' || t)
from unnest(array['billing_customers', 'subscriptions', 'subscription_items', 'orders', 'order_items',
                  'billing_events', 'billing_credit_prices']) t;
select table_privs_are('public', t, 'authenticated', array['SELECT'], 'authenticated only reads ' || t)
from unnest(array['billing_customers', 'subscriptions', 'subscription_items', 'orders', 'order_items',
                  'billing_credit_prices']) t;
select table_privs_are('public', 'billing_events', 'authenticated', array[]::text[],
  'the event ledger is not for signed-in users');

select is(
  (select array_agg(p.proname::text order by p.proname) from pg_proc p
   where p.pronamespace = 'public'::regnamespace
     and p.proname in ('apply_billing_event', 'record_billing_event', 'upsert_subscription', 'upsert_order')
     and (has_function_privilege('anon', p.oid, 'execute') or has_function_privilege('authenticated', p.oid, 'execute'))),
  null,
  'no billing function is executable by anon or authenticated');
select ok(
  has_function_privilege('service_role', 'public.apply_billing_event(jsonb)', 'execute'),
  'service_role executes apply_billing_event');
select is_definer('public', 'apply_billing_event', array['jsonb'],
  'apply_billing_event is security definer (its helpers live in kit)');

/*
 * A subscription's life: created, renewed, plan changed, canceled
 */
select is(tests.apply(tests.event('evt_1', '2026-01-01T00:00:00Z',
    tests.subscription('sub_1', 'active', jsonb_build_array(tests.item('price_plan'))),
    tests.account_id('billco'), '{"customer_id": "cus_1", "email": "owner@test.local"}'))->>'outcome',
  'applied', 'a new subscription is applied');
select results_eq(
  $$select status::text, active, account_id from public.subscriptions where id = 'sub_1'$$,
  $$values ('active', true, tests.account_id('billco'))$$,
  'the subscription is stored for the account');
select is((select email from public.billing_customers where customer_id = 'cus_1'),
  'owner@test.local', 'its customer is linked to the account');

select is(tests.apply(tests.event('evt_1', '2026-01-01T00:00:00Z',
    tests.subscription('sub_1', 'canceled', '[]')))->>'outcome',
  'duplicate', 'the same event id again is a duplicate, whatever it says');
select is((select status::text from public.subscriptions where id = 'sub_1'), 'active',
  'a duplicate changes nothing');

-- A renewal paid: the plan's credits, to the account's primary owner, once.
select is((tests.apply(tests.event('evt_2', '2026-01-01T00:00:01Z',
    '{"kind": "payment", "payment": {"subscription_id": "sub_1", "reference": "in_1", "items": null}}',
    customer => '{"customer_id": "cus_1"}'))->>'credits_granted')::int,
  500, 'a paid period grants the stored plan''s renewal credits (account found through the customer)');
select is(tests.credits('owner'), 800, 'to the primary owner: 300 at sign-up + 500');
select is((tests.apply(tests.event('evt_2b', '2026-01-01T00:00:02Z',
    '{"kind": "payment", "payment": {"subscription_id": "sub_1", "reference": "in_1",
      "items": [{"variant_id": "price_plan", "quantity": 1}]}}'))->>'credits_granted')::int,
  0, 'another event for the same invoice grants nothing more');
select is((select count(*)::int from public.credit_transactions
           where reason = 'renewal' and reference = 'stripe:in_1'), 1, 'one ledger row for the invoice');

-- Plan change: items not listed are deleted.
select is(tests.apply(tests.event('evt_3', '2026-01-15T00:00:00Z',
    tests.subscription('sub_1', 'active', jsonb_build_array(tests.item('price_team', 3), tests.item('price_api')))))->>'outcome',
  'applied', 'a plan change is applied (account found through the stored subscription)');
select results_eq(
  $$select variant_id, quantity from public.subscription_items where subscription_id = 'sub_1' order by variant_id$$,
  $$values ('price_api', 1), ('price_team', 3)$$,
  'the old item is gone, the new ones are there');

-- Out of order: an older event is stale and changes nothing.
select is(tests.apply(tests.event('evt_old', '2026-01-10T00:00:00Z',
    tests.subscription('sub_1', 'past_due', jsonb_build_array(tests.item('price_plan')))))->>'outcome',
  'stale', 'an event older than the last one applied is stale');
select results_eq(
  $$select status::text, (select count(*)::int from public.subscription_items where subscription_id = 'sub_1')
    from public.subscriptions where id = 'sub_1'$$,
  $$values ('active', 2)$$,
  'a stale event changes neither the subscription nor its items');
select results_eq(
  $$select outcome::text, processed_at is not null from public.billing_events where event_id = 'evt_old'$$,
  $$values ('stale', true)$$,
  'it is still recorded, as stale and processed');

select is(tests.apply(tests.event('evt_4', '2026-02-01T00:00:00Z',
    tests.subscription('sub_1', 'canceled', jsonb_build_array(tests.item('price_team', 3)))))->>'outcome',
  'applied', 'the cancellation is applied');
select results_eq($$select status::text, active from public.subscriptions where id = 'sub_1'$$,
  $$values ('canceled', false)$$, 'canceled gives no access');

/*
 * Failures are kept for the redelivery
 */
select is(tests.apply(tests.event('evt_5', '2026-01-01T00:00:00Z',
    tests.subscription('sub_2', 'active', jsonb_build_array(tests.item('price_plan'))),
    customer => '{"customer_id": "cus_unknown"}'))->>'outcome',
  'failed', 'an event for a customer no account is linked to fails');
select results_eq(
  $$select outcome::text, processed_at is null, error like 'no account is known for stripe customer cus_unknown%'
    from public.billing_events where event_id = 'evt_5'$$,
  $$values ('failed', true, true)$$,
  'it is recorded as failed, unprocessed, with the reason');
select is_empty($$select 1 from public.subscriptions where id = 'sub_2'$$, 'nothing of it was applied');

-- The customer gets linked (a checkout event), then the redelivery applies.
select is(tests.apply(tests.event('evt_6', '2026-01-01T00:00:00Z', '{"kind": "customer"}',
    tests.account_id('billco'), '{"customer_id": "cus_unknown"}'))->>'outcome',
  'applied', 'a checkout links the customer');
select is(tests.apply(tests.event('evt_5', '2026-01-01T00:00:00Z',
    tests.subscription('sub_2', 'active', jsonb_build_array(tests.item('price_plan'))),
    customer => '{"customer_id": "cus_unknown"}'))->>'outcome',
  'applied', 'the redelivered event now applies');
select results_eq(
  $$select outcome::text, error, attempts from public.billing_events where event_id = 'evt_5'$$,
  $$values ('applied', null::text, 2)$$,
  'the ledger shows it applied on the second attempt');

select is(tests.apply(tests.event('evt_7', '2026-01-01T00:00:00Z',
    tests.subscription('sub_2', 'active', '[]'), tests.account_id('billco')))->>'outcome',
  'applied', 'equal event times apply');
select is(tests.apply(tests.event('evt_8', '2026-03-01T00:00:00Z',
    tests.subscription('sub_2', 'active', '[]'), tests.user_id('solo')))->>'outcome',
  'failed', 'a subscription cannot move to another account');
select is(tests.apply(tests.event('evt_9', '2026-03-01T00:00:00Z',
    tests.subscription('sub_9', 'active', '[]'), gen_random_uuid()))->>'outcome',
  'failed', 'an unknown account fails');
select is(tests.apply(tests.event('evt_10', '2026-03-01T00:00:00Z',
    '{"kind": "invalid", "error": "the subscription in the payload cannot be read"}'))->>'error',
  'the subscription in the payload cannot be read', 'an unreadable payload is recorded as failed with why');
select is(tests.apply(tests.event('evt_11', '2026-03-01T00:00:00Z',
    '{"kind": "ignored", "reason": "not used"}'))->>'outcome',
  'ignored', 'an event type not used is ignored');
select results_eq($$select outcome::text, processed_at is not null from public.billing_events where event_id = 'evt_11'$$,
  $$values ('ignored', true)$$, 'and recorded as processed');

/*
 * One-off orders and credit packs
 */
select is((tests.apply(tests.event('evt_o1', '2026-01-01T00:00:00Z',
    tests.order_change('cs_1', 'pending', '[{"variant_id": "price_pack", "quantity": 2}]'),
    tests.user_id('solo')))->>'credits_granted')::int,
  0, 'a pending order grants nothing');
select is((tests.apply(tests.event('evt_o2', '2026-01-01T00:01:00Z',
    tests.order_change('cs_1', 'succeeded', '[{"variant_id": "price_pack", "quantity": 2}]'),
    tests.user_id('solo')))->>'credits_granted')::int,
  200, 'paid: 2 packs of 100 credits, to the personal account''s user');
select is(tests.credits('solo'), 500, 'the balance holds them');
select is((tests.apply(tests.event('evt_o3', '2026-01-01T00:02:00Z',
    tests.order_change('cs_1', 'succeeded', '[{"variant_id": "price_pack", "quantity": 2}]'),
    tests.user_id('solo')))->>'credits_granted')::int,
  0, 'a later event for the paid order grants nothing more');
select is(tests.apply(tests.event('evt_o4', '2026-01-01T00:03:00Z',
    tests.order_change('cs_1', 'pending', '[{"variant_id": "price_pack", "quantity": 2}]'),
    tests.user_id('solo')))->>'outcome',
  'stale', 'a paid order never goes back to pending');
select is((tests.apply(tests.event('evt_o5', '2026-01-01T00:00:00Z',
    tests.order_change('cs_2', 'succeeded', '[{"variant_id": "price_plan", "quantity": 1}]'),
    tests.user_id('solo')))->>'credits_granted')::int,
  0, 'a renewal price bought as a one-off grants no purchase credits');
select is((tests.apply(tests.event('evt_o6', '2026-01-01T00:00:00Z',
    tests.order_change('cs_3', 'failed', '[{"variant_id": "price_pack", "quantity": 1}]'),
    tests.user_id('solo')))->>'credits_granted')::int,
  0, 'a failed payment grants nothing');
select is(tests.credits('solo'), 500, 'the balance is unchanged by all of that');

/*
 * Who reads what
 */
select tests.authenticate_as('member');
select is((select count(*)::int from public.subscriptions), 2, 'a member reads the account''s subscriptions');
select is((select count(*)::int from public.subscription_items), 1, '...and their items');
select tests.authenticate_as('outsider');
select is((select count(*)::int from public.subscriptions) + (select count(*)::int from public.orders)
          + (select count(*)::int from public.billing_customers), 0, 'an outsider reads no billing rows');
select tests.authenticate_as('solo');
select is((select count(*)::int from public.orders), 3, 'the user of a personal account reads its orders');
select is((select count(*)::int from public.billing_credit_prices where price_id in ('price_pack', 'price_plan')), 2,
  'signed-in users read the credit prices');
select throws_ok($$select * from public.billing_events$$, '42501', null, 'signed-in users cannot read the event ledger');
select throws_ok($$update public.subscriptions set status = 'active'$$, '42501', null,
  'signed-in users cannot write subscriptions');
select throws_ok($$select public.apply_billing_event('{}')$$, '42501', null,
  'nor apply events themselves');

/*
 * Bad input writes nothing
 */
select tests.clear_authentication();
select throws_ok($$select tests.apply('{"provider": "stripe", "type": "x", "occurred_at": "2026-01-01T00:00:00Z", "change": {"kind": "ignored"}}')$$,
  'P0001', 'http_422: An event needs a provider, event_id, type, occurred_at and change',
  'an event without an id is refused');
select throws_ok($$select tests.apply('{"provider": "gumroad", "event_id": "e", "type": "x", "occurred_at": "2026-01-01T00:00:00Z", "change": {"kind": "ignored"}}')$$,
  'P0001', 'http_422: The event''s provider or occurred_at is not valid',
  'an unknown provider is refused');
select is_empty($$select 1 from public.billing_events where event_id = 'e'$$, 'and nothing was recorded');

select * from finish();
rollback;
