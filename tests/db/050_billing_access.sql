-- The billing tables and functions: their structure, and who may do what.
-- Members of an account (owner or member of a team, the user of a
-- personal account) read its customer links, subscriptions and orders; an
-- outsider and anon read nothing; nobody but service_role writes a row;
-- the event ledger is service_role's alone; credit prices are readable by
-- every signed-in user. Only service_role may call the billing functions,
-- and no API role the kit helpers behind apply_billing_event.
begin;
create extension if not exists pgtap;
\ir _helpers.psql

do $$
begin
  perform tests.create_user('owner');
  perform tests.create_user('member');
  perform tests.create_user('outsider');
  perform tests.create_user('solo');
  perform tests.create_team_account('owner', 'team');
  perform tests.add_member(tests.account_id('team'), 'member', 'member');
  -- A second team, with its own owner, that nobody above belongs to.
  perform tests.create_user('stranger');
  perform tests.create_team_account('stranger', 'elsewhere');

  -- One customer, subscription and order per account: the team, solo's
  -- personal account (its id is solo's user id) and the other team.
  insert into public.billing_customers (account_id, provider, customer_id, email)
  values
    (tests.account_id('team'), 'stripe', 'cus_team', 'billing@team.example'),
    (tests.user_id('solo'), 'lemon-squeezy', 'ls_cus_solo', 'solo@test.local'),
    (tests.account_id('elsewhere'), 'paddle', 'ctm_elsewhere', null);

  insert into public.subscriptions (id, account_id, status, active, billing_provider, last_event_at)
  values
    ('sub_team', tests.account_id('team'), 'active', true, 'stripe', now()),
    ('ls_sub_solo', tests.user_id('solo'), 'trialing', true, 'lemon-squeezy', now()),
    ('sub_elsewhere', tests.account_id('elsewhere'), 'past_due', false, 'paddle', now());
  insert into public.subscription_items (subscription_id, variant_id, type, quantity)
  values
    ('sub_team', 'price_pro', 'flat', 1),
    ('sub_team', 'price_seat', 'per_seat', 4),
    ('ls_sub_solo', 'ls_variant_basic', 'flat', 1),
    ('sub_elsewhere', 'pri_pro', 'flat', 1);

  insert into public.orders (id, account_id, status, billing_provider, total_amount, currency, last_event_at)
  values
    ('cs_team', tests.account_id('team'), 'succeeded', 'stripe', 2000, 'USD', now()),
    ('ls_order_solo', tests.user_id('solo'), 'pending', 'lemon-squeezy', 500, 'EUR', now()),
    ('txn_elsewhere', tests.account_id('elsewhere'), 'failed', 'paddle', 900, 'GBP', now());
  insert into public.order_items (order_id, variant_id, quantity)
  values
    ('cs_team', 'price_pack', 2),
    ('ls_order_solo', 'ls_variant_pack', 1),
    ('txn_elsewhere', 'pri_pack', 1);

  insert into public.billing_events (provider, event_id, type, occurred_at, processed_at, outcome)
  values ('stripe', 'evt_access_1', 'customer.subscription.created', now(), now(), 'applied');

  -- Only this file's credit prices (dev/seed.sql adds demo ones).
  delete from public.billing_credit_prices;
  insert into public.billing_credit_prices (provider, price_id, credits, grant_on)
  values
    ('stripe', 'price_pack', 100, 'purchase'),
    ('paddle', 'pri_pro', 20, 'renewal');
end
$$;

-- What a table shows the current role, as one key per row.
create function tests.visible(table_name text)
returns setof text
language plpgsql
as $$
begin
  return query execute case visible.table_name
    when 'billing_customers' then 'select customer_id from public.billing_customers'
    when 'subscriptions' then 'select id from public.subscriptions'
    when 'subscription_items' then 'select subscription_id || ''/'' || variant_id from public.subscription_items'
    when 'orders' then 'select id from public.orders'
    when 'order_items' then 'select order_id || ''/'' || variant_id from public.order_items'
  end;
end;
$$;
grant execute on function tests.visible(text) to anon, authenticated, service_role;

select plan(171);

/*
 * Structure
 */
select has_table('public', 'billing_customers', 'public.billing_customers exists');
select has_table('public', 'subscriptions', 'public.subscriptions exists');
select has_table('public', 'subscription_items', 'public.subscription_items exists');
select has_table('public', 'orders', 'public.orders exists');
select has_table('public', 'order_items', 'public.order_items exists');
select has_table('public', 'billing_events', 'public.billing_events exists');
select has_table('public', 'billing_credit_prices', 'public.billing_credit_prices exists');

select columns_are('public', 'billing_customers',
  array['id', 'account_id', 'provider', 'customer_id', 'email', 'created_at', 'updated_at'],
  'public.billing_customers has exactly its documented columns');
select columns_are('public', 'subscriptions',
  array['id', 'account_id', 'billing_customer_id', 'status', 'active', 'billing_provider',
        'cancel_at_period_end', 'currency', 'period_starts_at', 'period_ends_at',
        'trial_starts_at', 'trial_ends_at', 'last_event_at', 'created_at', 'updated_at'],
  'public.subscriptions has exactly its documented columns');
select columns_are('public', 'subscription_items',
  array['subscription_id', 'product_id', 'variant_id', 'type', 'quantity', 'interval',
        'interval_count', 'price_amount', 'created_at', 'updated_at'],
  'public.subscription_items has exactly its documented columns');
select columns_are('public', 'orders',
  array['id', 'account_id', 'billing_customer_id', 'status', 'billing_provider', 'total_amount',
        'currency', 'last_event_at', 'created_at', 'updated_at', 'amount_refunded', 'amount_disputed'],
  'public.orders has exactly its documented columns');
select columns_are('public', 'order_items',
  array['order_id', 'product_id', 'variant_id', 'quantity', 'price_amount', 'created_at', 'updated_at'],
  'public.order_items has exactly its documented columns');
select columns_are('public', 'billing_events',
  array['id', 'provider', 'event_id', 'type', 'occurred_at', 'received_at', 'processed_at',
        'outcome', 'error', 'attempts', 'api_version', 'notification_id'],
  'public.billing_events has exactly its documented columns');
select columns_are('public', 'billing_credit_prices',
  array['provider', 'price_id', 'credits', 'grant_on', 'created_at', 'updated_at'],
  'public.billing_credit_prices has exactly its documented columns');

select col_is_pk('public', 'billing_customers', 'id', 'customer links are keyed by id');
select col_is_pk('public', 'subscriptions', 'id', 'subscriptions are keyed by the provider''s id');
select col_is_pk('public', 'subscription_items', array['subscription_id', 'variant_id'],
  'a subscription lists each price or variant once');
select col_is_pk('public', 'orders', 'id', 'orders are keyed by the provider''s id');
select col_is_pk('public', 'order_items', array['order_id', 'variant_id'],
  'an order lists each price or variant once');
select col_is_pk('public', 'billing_events', 'id', 'ledger rows are keyed by id');
select col_is_pk('public', 'billing_credit_prices', array['provider', 'price_id'],
  'a provider''s price has one credit setting');

select col_is_unique('public', 'billing_customers', array['account_id', 'provider', 'customer_id'],
  'an account links a provider''s customer once');
select col_is_unique('public', 'billing_events', array['provider', 'event_id'],
  'a provider''s event is recorded once');

select fk_ok('public', 'billing_customers', 'account_id', 'public', 'accounts', 'id',
  'a customer link belongs to an account');
select fk_ok('public', 'subscriptions', 'account_id', 'public', 'accounts', 'id',
  'a subscription belongs to an account');
select fk_ok('public', 'subscriptions', 'billing_customer_id', 'public', 'billing_customers', 'id',
  'a subscription names its customer link');
select fk_ok('public', 'subscription_items', 'subscription_id', 'public', 'subscriptions', 'id',
  'an item belongs to a subscription');
select fk_ok('public', 'orders', 'account_id', 'public', 'accounts', 'id',
  'an order belongs to an account');
select fk_ok('public', 'orders', 'billing_customer_id', 'public', 'billing_customers', 'id',
  'an order names its customer link');
select fk_ok('public', 'order_items', 'order_id', 'public', 'orders', 'id',
  'an order item belongs to an order');

select has_index('public', 'billing_customers', 'ix_billing_customers_provider_customer_id',
  array['provider', 'customer_id'], 'customer links are indexed by provider and customer id');
select has_index('public', 'subscriptions', 'ix_subscriptions_account_id', array['account_id'],
  'subscriptions are indexed by account');
select has_index('public', 'orders', 'ix_orders_account_id', array['account_id'],
  'orders are indexed by account');
select has_index('public', 'billing_events', 'ix_billing_events_unprocessed', array['received_at'],
  'unprocessed events are indexed for an operator''s query');

select enum_has_labels('public', 'billing_provider', array['stripe', 'lemon-squeezy', 'paddle'],
  'billing_provider is stripe, lemon-squeezy, paddle');
select enum_has_labels('public', 'subscription_status',
  array['active', 'trialing', 'past_due', 'canceled', 'unpaid', 'incomplete', 'incomplete_expired',
        'paused', 'expired'],
  'subscription_status is the providers'' statuses');
select enum_has_labels('public', 'payment_status', array['pending', 'succeeded', 'failed'],
  'payment_status is pending, succeeded, failed');
select enum_has_labels('public', 'subscription_item_type', array['flat', 'per_seat', 'metered'],
  'subscription_item_type is flat, per_seat, metered');
select enum_has_labels('public', 'billing_event_outcome', array['applied', 'ignored', 'stale', 'failed'],
  'billing_event_outcome is applied, ignored, stale, failed');

select trigger_is('public', 'billing_customers', 'set_billing_customers_timestamps', 'kit', 'set_timestamps',
  'billing_customers keeps updated_at current');
select trigger_is('public', 'subscriptions', 'set_subscriptions_timestamps', 'kit', 'set_timestamps',
  'subscriptions keeps updated_at current');
select trigger_is('public', 'subscription_items', 'set_subscription_items_timestamps', 'kit', 'set_timestamps',
  'subscription_items keeps updated_at current');
select trigger_is('public', 'orders', 'set_orders_timestamps', 'kit', 'set_timestamps',
  'orders keeps updated_at current');
select trigger_is('public', 'order_items', 'set_order_items_timestamps', 'kit', 'set_timestamps',
  'order_items keeps updated_at current');
select trigger_is('public', 'billing_credit_prices', 'set_billing_credit_prices_timestamps', 'kit', 'set_timestamps',
  'billing_credit_prices keeps updated_at current');

/*
 * Row level security and privileges
 */
select ok((select relrowsecurity from pg_class where oid = 'public.billing_customers'::regclass),
  'RLS is on for billing_customers');
select ok((select relrowsecurity from pg_class where oid = 'public.subscriptions'::regclass),
  'RLS is on for subscriptions');
select ok((select relrowsecurity from pg_class where oid = 'public.subscription_items'::regclass),
  'RLS is on for subscription_items');
select ok((select relrowsecurity from pg_class where oid = 'public.orders'::regclass),
  'RLS is on for orders');
select ok((select relrowsecurity from pg_class where oid = 'public.order_items'::regclass),
  'RLS is on for order_items');
select ok((select relrowsecurity from pg_class where oid = 'public.billing_events'::regclass),
  'RLS is on for billing_events');
select ok((select relrowsecurity from pg_class where oid = 'public.billing_credit_prices'::regclass),
  'RLS is on for billing_credit_prices');

select policies_are('public', 'billing_customers',
  array['Billing customers are viewable by the account''s members'],
  'billing_customers has only its read policy');
select policies_are('public', 'subscriptions',
  array['Subscriptions are viewable by the account''s members'],
  'subscriptions has only its read policy');
select policies_are('public', 'subscription_items',
  array['Subscription items are viewable with their subscription'],
  'subscription_items has only its read policy');
select policies_are('public', 'orders',
  array['Orders are viewable by the account''s members'],
  'orders has only its read policy');
select policies_are('public', 'order_items',
  array['Order items are viewable with their order'],
  'order_items has only its read policy');
select policies_are('public', 'billing_events', array[]::name[],
  'billing_events has no policy: only service_role, which bypasses RLS, reads it');
select policies_are('public', 'billing_credit_prices',
  array['Credit prices are viewable by signed-in users'],
  'billing_credit_prices has only its read policy');
select is_empty($$
  select policyname, cmd, roles from pg_policies
  where schemaname = 'public'
    and tablename in ('billing_customers', 'subscriptions', 'subscription_items', 'orders', 'order_items',
                      'billing_credit_prices')
    and (cmd <> 'SELECT' or roles <> '{authenticated}')
$$, 'every billing policy is a SELECT policy for authenticated');

select is_empty($$
  select seq, r.rolname, priv
  from unnest(array['public.billing_customers_id_seq', 'public.billing_events_id_seq']) as seq
  cross join (values ('anon'), ('authenticated'), ('service_role'), ('public')) as r (rolname)
  cross join unnest(array['USAGE', 'SELECT', 'UPDATE']) as priv
  where has_sequence_privilege(r.rolname, seq, priv)
$$, 'no API role or PUBLIC holds a privilege on the identity sequences');

/*
 * anon: nothing at all
 */
select tests.authenticate_as_anon();

select tests.reads_denied('anon', array['billing_customers', 'subscriptions', 'subscription_items',
  'orders', 'order_items', 'billing_events', 'billing_credit_prices']);
select tests.denied(
  $$ insert into public.subscriptions (id, account_id, status, active, billing_provider, last_event_at)
     values ('sub_anon', tests.account_id('team'), 'active', true, 'stripe', now()) $$,
  'subscriptions', 'anon cannot create a subscription');
select tests.denied(
  $$ insert into public.billing_events (provider, event_id, type, occurred_at)
     values ('stripe', 'evt_anon', 'forged', now()) $$,
  'billing_events', 'anon cannot record an event');

/*
 * outsider: signed in, member of nothing
 */
select tests.authenticate_as('outsider');

select is_empty($$ select * from tests.visible('billing_customers') $$,
  'an outsider sees no customer links');
select is_empty($$ select * from tests.visible('subscriptions') $$,
  'an outsider sees no subscriptions');
select is_empty($$ select * from tests.visible('subscription_items') $$,
  'an outsider sees no subscription items');
select is_empty($$ select * from tests.visible('orders') $$,
  'an outsider sees no orders');
select is_empty($$ select * from tests.visible('order_items') $$,
  'an outsider sees no order items');
select tests.denied($$ select * from public.billing_events $$,
  'billing_events', 'an outsider cannot read billing_events');
select set_eq($$ select provider::text, price_id, credits, grant_on from public.billing_credit_prices $$,
  $$ values ('stripe', 'price_pack', 100, 'purchase'), ('paddle', 'pri_pro', 20, 'renewal') $$,
  'an outsider reads every credit price, as a pricing page would');

/*
 * member of the team
 */
select tests.authenticate_as('member');

select set_eq($$ select * from tests.visible('billing_customers') $$, array['cus_team'],
  'a member sees their team''s customer link only');
select set_eq($$ select * from tests.visible('subscriptions') $$, array['sub_team'],
  'a member sees their team''s subscription only');
select set_eq($$ select * from tests.visible('subscription_items') $$, array['sub_team/price_pro', 'sub_team/price_seat'],
  'a member sees their team''s subscription items only');
select set_eq($$ select * from tests.visible('orders') $$, array['cs_team'],
  'a member sees their team''s order only');
select set_eq($$ select * from tests.visible('order_items') $$, array['cs_team/price_pack'],
  'a member sees their team''s order items only');
select tests.denied($$ select * from public.billing_events $$,
  'billing_events', 'a member cannot read billing_events');
select is((select count(*)::int from public.billing_credit_prices), 2, 'a member reads the credit prices');

/*
 * owner of the team
 */
select tests.authenticate_as('owner');

select set_eq($$ select * from tests.visible('billing_customers') $$, array['cus_team'],
  'the owner sees their team''s customer link only');
select set_eq($$ select * from tests.visible('subscriptions') $$, array['sub_team'],
  'the owner sees their team''s subscription only');
select set_eq($$ select * from tests.visible('subscription_items') $$, array['sub_team/price_pro', 'sub_team/price_seat'],
  'the owner sees their team''s subscription items only');
select set_eq($$ select * from tests.visible('orders') $$, array['cs_team'],
  'the owner sees their team''s order only');
select set_eq($$ select * from tests.visible('order_items') $$, array['cs_team/price_pack'],
  'the owner sees their team''s order items only');
select tests.denied($$ select * from public.billing_events $$,
  'billing_events', 'the owner cannot read billing_events');

-- Writes: authenticated holds SELECT only, so every write is refused
-- outright (42501), not merely filtered to no rows.
select tests.denied(
  $$ insert into public.billing_customers (account_id, provider, customer_id)
     values (tests.account_id('team'), 'stripe', 'cus_forged') $$,
  'billing_customers', 'the owner cannot link a customer to the team');
select tests.denied(
  $$ update public.billing_customers set email = 'me@owner.example' where customer_id = 'cus_team' $$,
  'billing_customers', 'the owner cannot change the team''s customer link');
select tests.denied(
  $$ delete from public.billing_customers where customer_id = 'cus_team' $$,
  'billing_customers', 'the owner cannot delete the team''s customer link');
select tests.denied(
  $$ insert into public.subscriptions (id, account_id, status, active, billing_provider, last_event_at)
     values ('sub_free', tests.account_id('team'), 'active', true, 'stripe', now()) $$,
  'subscriptions', 'the owner cannot give the team a subscription');
select tests.denied(
  $$ update public.subscriptions set status = 'active', active = true, period_ends_at = 'infinity'
     where id = 'sub_team' $$,
  'subscriptions', 'the owner cannot extend the team''s subscription');
select tests.denied(
  $$ delete from public.subscriptions where id = 'sub_team' $$,
  'subscriptions', 'the owner cannot delete the team''s subscription');
select tests.denied(
  $$ insert into public.subscription_items (subscription_id, variant_id, type, quantity)
     values ('sub_team', 'price_enterprise', 'flat', 1) $$,
  'subscription_items', 'the owner cannot add an item to the team''s subscription');
select tests.denied(
  $$ update public.subscription_items set quantity = 100 where subscription_id = 'sub_team' $$,
  'subscription_items', 'the owner cannot change the seats on the team''s subscription');
select tests.denied(
  $$ delete from public.subscription_items where subscription_id = 'sub_team' $$,
  'subscription_items', 'the owner cannot delete the team''s subscription items');
select tests.denied(
  $$ insert into public.orders (id, account_id, status, billing_provider, last_event_at)
     values ('cs_free', tests.account_id('team'), 'succeeded', 'stripe', now()) $$,
  'orders', 'the owner cannot record an order');
select tests.denied(
  $$ update public.orders set status = 'succeeded' where id = 'cs_team' $$,
  'orders', 'the owner cannot change the team''s order');
select tests.denied(
  $$ delete from public.orders where id = 'cs_team' $$,
  'orders', 'the owner cannot delete the team''s order');
select tests.denied(
  $$ insert into public.order_items (order_id, variant_id, quantity) values ('cs_team', 'price_pack_big', 10) $$,
  'order_items', 'the owner cannot add an item to the team''s order');
select tests.denied(
  $$ update public.order_items set quantity = 100 where order_id = 'cs_team' $$,
  'order_items', 'the owner cannot change the team''s order items');
select tests.denied(
  $$ delete from public.order_items where order_id = 'cs_team' $$,
  'order_items', 'the owner cannot delete the team''s order items');
select tests.denied(
  $$ insert into public.billing_events (provider, event_id, type, occurred_at)
     values ('stripe', 'evt_forged', 'invoice.paid', now()) $$,
  'billing_events', 'the owner cannot record an event');
select tests.denied(
  $$ update public.billing_events set processed_at = now(), outcome = 'applied' $$,
  'billing_events', 'the owner cannot mark events processed');
select tests.denied(
  $$ delete from public.billing_events $$,
  'billing_events', 'the owner cannot delete events');
select tests.denied(
  $$ insert into public.billing_credit_prices (provider, price_id, credits, grant_on)
     values ('stripe', 'price_cheap', 1000000, 'purchase') $$,
  'billing_credit_prices', 'the owner cannot add a credit price');
select tests.denied(
  $$ update public.billing_credit_prices set credits = 1000000 where price_id = 'price_pack' $$,
  'billing_credit_prices', 'the owner cannot change a credit price');
select tests.denied(
  $$ delete from public.billing_credit_prices $$,
  'billing_credit_prices', 'the owner cannot delete credit prices');

/*
 * solo: the user of a personal account (its id is the user's id)
 */
select tests.authenticate_as('solo');

select set_eq($$ select * from tests.visible('billing_customers') $$, array['ls_cus_solo'],
  'a personal account''s user sees its customer link only');
select set_eq($$ select * from tests.visible('subscriptions') $$, array['ls_sub_solo'],
  'a personal account''s user sees its subscription only');
select set_eq($$ select * from tests.visible('subscription_items') $$, array['ls_sub_solo/ls_variant_basic'],
  'a personal account''s user sees its subscription items only');
select set_eq($$ select * from tests.visible('orders') $$, array['ls_order_solo'],
  'a personal account''s user sees its order only');
select set_eq($$ select * from tests.visible('order_items') $$, array['ls_order_solo/ls_variant_pack'],
  'a personal account''s user sees its order items only');
select tests.denied(
  $$ update public.subscriptions set status = 'active' where id = 'ls_sub_solo' $$,
  'subscriptions', 'a personal account''s user cannot change its own subscription');
select tests.denied(
  $$ update public.orders set status = 'succeeded' where id = 'ls_order_solo' $$,
  'orders', 'a personal account''s user cannot mark its own order paid');

/*
 * The rows are as they were
 */
select tests.clear_authentication();

select results_eq(
  $$ select (select count(*) from public.billing_customers)::int, (select count(*) from public.subscriptions)::int,
            (select count(*) from public.subscription_items)::int, (select count(*) from public.orders)::int,
            (select count(*) from public.order_items)::int, (select count(*) from public.billing_events)::int,
            (select count(*) from public.billing_credit_prices)::int $$,
  $$ values (3, 3, 4, 3, 3, 1, 2) $$,
  'no refused write left a trace');
select results_eq(
  $$ select status::text, active, (select sum(quantity)::int from public.subscription_items where subscription_id = 'sub_team')
     from public.subscriptions where id = 'sub_team' $$,
  $$ values ('active', true, 5) $$,
  'the team''s subscription is unchanged');

/*
 * service_role: reads and writes everything but deleting events
 */
select tests.authenticate_as_service_role();

select set_eq($$ select * from tests.visible('billing_customers') $$, array['cus_team', 'ls_cus_solo', 'ctm_elsewhere'],
  'service_role sees every customer link');
select set_eq($$ select * from tests.visible('subscriptions') $$, array['sub_team', 'ls_sub_solo', 'sub_elsewhere'],
  'service_role sees every subscription');
select set_eq($$ select * from tests.visible('orders') $$, array['cs_team', 'ls_order_solo', 'txn_elsewhere'],
  'service_role sees every order');
select results_eq($$ select event_id from public.billing_events $$, $$ values ('evt_access_1') $$,
  'service_role reads the event ledger');
select lives_ok(
  $$ insert into public.billing_customers (account_id, provider, customer_id)
     values (tests.account_id('elsewhere'), 'stripe', 'cus_elsewhere') $$,
  'service_role links a customer without a grant on the identity sequence');
select lives_ok(
  $$ insert into public.billing_events (provider, event_id, type, occurred_at)
     values ('paddle', 'evt_service_1', 'subscription.created', now()) $$,
  'service_role records an event without a grant on the identity sequence');
select tests.denied(
  $$ delete from public.billing_events where event_id = 'evt_service_1' $$,
  'billing_events', 'not even service_role deletes from the event ledger');
select lives_ok(
  $$ update public.billing_credit_prices set credits = 120 where provider = 'stripe' and price_id = 'price_pack' $$,
  'service_role can change a credit price');

/*
 * Functions: service_role only
 */
select tests.clear_authentication();

select has_function('public', 'apply_billing_event', array['jsonb'], 'apply_billing_event(p_event) exists');
select has_function('public', 'record_billing_event', array['billing_provider', 'text', 'text', 'timestamp with time zone'],
  'record_billing_event(p_provider, p_event_id, p_type, p_occurred_at) exists');
select has_function('public', 'upsert_subscription',
  array['uuid', 'bigint', 'billing_provider', 'timestamp with time zone', 'jsonb'],
  'upsert_subscription(p_account_id, p_billing_customer_id, p_provider, p_occurred_at, p_subscription) exists');
select has_function('public', 'upsert_order',
  array['uuid', 'bigint', 'billing_provider', 'timestamp with time zone', 'jsonb'],
  'upsert_order(p_account_id, p_billing_customer_id, p_provider, p_occurred_at, p_order) exists');
select function_returns('public', 'apply_billing_event', array['jsonb'], 'jsonb',
  'apply_billing_event returns jsonb');
select is(
  (select count(*)::int from pg_proc
   where pronamespace = 'public'::regnamespace
     and proname in ('apply_billing_event', 'record_billing_event', 'upsert_subscription', 'upsert_order')),
  4,
  'each has exactly one signature: no overload to slip past the grants');

select is_definer('public', 'apply_billing_event', array['jsonb'],
  'apply_billing_event runs as its owner, to reach its helpers in kit');
select is(
  (select proconfig from pg_proc where oid = 'public.apply_billing_event(jsonb)'::regprocedure),
  array['search_path=""'],
  'apply_billing_event pins an empty search_path');
select isnt_definer('public', 'record_billing_event', array['billing_provider', 'text', 'text', 'timestamp with time zone'],
  'record_billing_event runs as its caller');
select isnt_definer('public', 'upsert_subscription',
  array['uuid', 'bigint', 'billing_provider', 'timestamp with time zone', 'jsonb'],
  'upsert_subscription runs as its caller');
select isnt_definer('public', 'upsert_order',
  array['uuid', 'bigint', 'billing_provider', 'timestamp with time zone', 'jsonb'],
  'upsert_order runs as its caller');
select is_empty($$
  select p.oid::regprocedure from pg_proc p
  where p.oid in (
    'public.apply_billing_event(jsonb)'::regprocedure,
    'public.record_billing_event(public.billing_provider, text, text, timestamptz)'::regprocedure,
    'public.upsert_subscription(uuid, bigint, public.billing_provider, timestamptz, jsonb)'::regprocedure,
    'public.upsert_order(uuid, bigint, public.billing_provider, timestamptz, jsonb)'::regprocedure,
    'kit.billing_account(public.billing_provider, text, text, text)'::regprocedure,
    'kit.upsert_billing_customer(uuid, public.billing_provider, jsonb)'::regprocedure,
    'kit.lock_billing_payment_keys(public.billing_provider, text[], text)'::regprocedure,
    'kit.settle_billing_payment(public.billing_provider, text)'::regprocedure,
    'kit.link_billing_payment(public.billing_provider, text, text[])'::regprocedure,
    'kit.apply_credit_policy(public.billing_provider, uuid, timestamptz, text, text, bigint, text, text, jsonb, text[])'::regprocedure,
    'kit.upsert_billing_reversal(public.billing_provider, timestamptz, jsonb, text)'::regprocedure)
    and p.proconfig is distinct from array['search_path=""']
$$, 'every billing function pins an empty search_path');

select function_privs_are('public', 'apply_billing_event', array['jsonb'], 'anon',
  array[]::text[], 'anon cannot call apply_billing_event');
select function_privs_are('public', 'apply_billing_event', array['jsonb'], 'authenticated',
  array[]::text[], 'authenticated cannot call apply_billing_event');
select function_privs_are('public', 'apply_billing_event', array['jsonb'], 'service_role',
  array['EXECUTE'], 'service_role can call apply_billing_event');
select function_privs_are('public', 'record_billing_event',
  array['billing_provider', 'text', 'text', 'timestamp with time zone'], 'anon',
  array[]::text[], 'anon cannot call record_billing_event');
select function_privs_are('public', 'record_billing_event',
  array['billing_provider', 'text', 'text', 'timestamp with time zone'], 'authenticated',
  array[]::text[], 'authenticated cannot call record_billing_event');
select function_privs_are('public', 'record_billing_event',
  array['billing_provider', 'text', 'text', 'timestamp with time zone'], 'service_role',
  array['EXECUTE'], 'service_role can call record_billing_event');
select function_privs_are('public', 'upsert_subscription',
  array['uuid', 'bigint', 'billing_provider', 'timestamp with time zone', 'jsonb'], 'anon',
  array[]::text[], 'anon cannot call upsert_subscription');
select function_privs_are('public', 'upsert_subscription',
  array['uuid', 'bigint', 'billing_provider', 'timestamp with time zone', 'jsonb'], 'authenticated',
  array[]::text[], 'authenticated cannot call upsert_subscription');
select function_privs_are('public', 'upsert_subscription',
  array['uuid', 'bigint', 'billing_provider', 'timestamp with time zone', 'jsonb'], 'service_role',
  array['EXECUTE'], 'service_role can call upsert_subscription');
select function_privs_are('public', 'upsert_order',
  array['uuid', 'bigint', 'billing_provider', 'timestamp with time zone', 'jsonb'], 'anon',
  array[]::text[], 'anon cannot call upsert_order');
select function_privs_are('public', 'upsert_order',
  array['uuid', 'bigint', 'billing_provider', 'timestamp with time zone', 'jsonb'], 'authenticated',
  array[]::text[], 'authenticated cannot call upsert_order');
select function_privs_are('public', 'upsert_order',
  array['uuid', 'bigint', 'billing_provider', 'timestamp with time zone', 'jsonb'], 'service_role',
  array['EXECUTE'], 'service_role can call upsert_order');

select is_empty($$
  select p.oid::regprocedure, r.rolname from pg_proc p
  cross join (values ('anon'), ('authenticated'), ('service_role'), ('public')) as r (rolname)
  where p.oid in (
    'kit.billing_account(public.billing_provider, text, text, text)'::regprocedure,
    'kit.upsert_billing_customer(uuid, public.billing_provider, jsonb)'::regprocedure,
    'kit.lock_billing_payment_keys(public.billing_provider, text[], text)'::regprocedure,
    'kit.settle_billing_payment(public.billing_provider, text)'::regprocedure,
    'kit.link_billing_payment(public.billing_provider, text, text[])'::regprocedure,
    'kit.apply_credit_policy(public.billing_provider, uuid, timestamptz, text, text, bigint, text, text, jsonb, text[])'::regprocedure,
    'kit.upsert_billing_reversal(public.billing_provider, timestamptz, jsonb, text)'::regprocedure)
    and has_function_privilege(r.rolname, p.oid, 'EXECUTE')
$$, 'no API role or PUBLIC may execute the kit billing helpers');

-- anon
select tests.authenticate_as_anon();

select throws_ok(
  $$ select public.apply_billing_event('{"provider": "stripe", "event_id": "evt_anon", "type": "x",
       "occurred_at": "2025-09-10T12:00:00Z", "change": {"kind": "ignored", "reason": "test"}}') $$,
  '42501', 'permission denied for function apply_billing_event',
  'anon cannot apply an event');
select throws_ok(
  $$ select public.record_billing_event('stripe', 'evt_anon', 'x', now()) $$,
  '42501', 'permission denied for function record_billing_event',
  'anon cannot record an event');
select throws_ok(
  $$ select public.upsert_subscription(tests.account_id('team'), null, 'stripe', now(),
       '{"id": "sub_anon", "status": "active", "items": []}') $$,
  '42501', 'permission denied for function upsert_subscription',
  'anon cannot write a subscription');
select throws_ok(
  $$ select public.upsert_order(tests.account_id('team'), null, 'stripe', now(),
       '{"id": "cs_anon", "status": "succeeded", "items": []}') $$,
  '42501', 'permission denied for function upsert_order',
  'anon cannot write an order');

-- authenticated, as the team's owner
select tests.authenticate_as('owner');

select throws_ok(
  format($$ select public.apply_billing_event(%L) $$, jsonb_build_object(
    'provider', 'stripe', 'event_id', 'evt_owner', 'type', 'checkout.session.completed',
    'occurred_at', '2025-09-10T12:00:00Z', 'account_id', tests.account_id('team'), 'customer', null,
    'change', jsonb_build_object('kind', 'order', 'order', jsonb_build_object(
      'id', 'cs_owner', 'status', 'succeeded', 'total_amount', 0, 'currency', 'USD',
      'items', jsonb_build_array(jsonb_build_object('product_id', null, 'variant_id', 'price_pack',
                                                    'quantity', 1000, 'price_amount', 0)))))),
  '42501', 'permission denied for function apply_billing_event',
  'the owner cannot apply an event paying themselves credits');
select throws_ok(
  $$ select public.record_billing_event('stripe', 'evt_owner', 'x', now()) $$,
  '42501', 'permission denied for function record_billing_event',
  'the owner cannot record an event');
select throws_ok(
  $$ select public.upsert_subscription(tests.account_id('team'), null, 'stripe', now(),
       '{"id": "sub_team", "status": "active", "items": []}') $$,
  '42501', 'permission denied for function upsert_subscription',
  'the owner cannot write the team''s subscription');
select throws_ok(
  $$ select public.upsert_order(tests.account_id('team'), null, 'stripe', now(),
       '{"id": "cs_team", "status": "succeeded", "items": []}') $$,
  '42501', 'permission denied for function upsert_order',
  'the owner cannot write the team''s order');
select throws_ok(
  $$ select kit.billing_account('stripe', null, 'cus_team', null) $$,
  '42501', 'permission denied for schema kit',
  'the owner cannot call the kit helpers behind apply_billing_event');
select throws_ok(
  $$ select kit.apply_credit_policy('stripe', tests.account_id('team'), now(), 'forged', null, 100, 'USD', null,
       '[{"variant_id": "price_pack", "quantity": 1000, "amount": 100, "kind": "one_time"}]', '{}') $$,
  '42501', 'permission denied for schema kit',
  'the owner cannot grant the team credits through the credit policy''s helper');

-- service_role
select tests.authenticate_as_service_role();

select throws_ok(
  $$ select kit.upsert_billing_customer(tests.account_id('team'), 'stripe', '{"customer_id": "cus_x"}') $$,
  '42501', 'permission denied for schema kit',
  'not even service_role calls the kit helpers directly');
select results_eq(
  $$ select event_id, processed_at is null, attempts
     from public.record_billing_event('paddle', 'evt_direct_1', 'subscription.updated', '2025-09-10T12:00:00Z') $$,
  $$ values ('evt_direct_1', true, 1) $$,
  'service_role records an event with record_billing_event');
select results_eq(
  $$ select event_id, processed_at is null, attempts
     from public.record_billing_event('paddle', 'evt_direct_1', 'subscription.updated', '2025-09-10T12:00:00Z') $$,
  $$ values ('evt_direct_1', true, 2) $$,
  'recording it again returns the same unprocessed row, one attempt more');
select is(
  public.upsert_subscription(tests.account_id('elsewhere'), null, 'paddle', now() + interval '1 day',
    '{"id": "sub_elsewhere", "status": "active", "active": true, "cancel_at_period_end": false,
      "currency": "GBP", "items": [{"variant_id": "pri_pro", "type": "flat", "quantity": 2}]}'),
  'applied'::public.billing_event_outcome,
  'service_role writes a subscription with upsert_subscription');
select is(
  public.upsert_order(tests.account_id('elsewhere'), null, 'paddle', now() + interval '1 day',
    '{"id": "txn_elsewhere", "status": "succeeded", "total_amount": 900, "currency": "GBP",
      "items": [{"variant_id": "pri_pack", "quantity": 1}]}'),
  'applied'::public.billing_event_outcome,
  'service_role writes an order with upsert_order');
select is(
  public.apply_billing_event(jsonb_build_object(
    'provider', 'paddle', 'event_id', 'evt_direct_2', 'type', 'subscription.updated',
    'occurred_at', '2025-09-10T12:00:00Z', 'account_id', null, 'customer', null,
    'change', jsonb_build_object('kind', 'ignored', 'reason', 'not used'))),
  '{"outcome": "ignored", "error": null, "credits_granted": 0, "credits_taken_back": 0}'::jsonb,
  'service_role applies an event with apply_billing_event');

select tests.clear_authentication();

select results_eq(
  $$ select s.status::text, s.active, i.quantity, o.status::text
     from public.subscriptions s
     join public.subscription_items i on i.subscription_id = s.id
     cross join public.orders o
     where s.id = 'sub_elsewhere' and o.id = 'txn_elsewhere' $$,
  $$ values ('active', true, 2, 'succeeded') $$,
  'what service_role wrote through the functions is there');

/*
 * Billing rows go with their account
 */
delete from public.accounts where id = tests.account_id('elsewhere');

select results_eq(
  $$ select (select count(*) from public.billing_customers where customer_id in ('ctm_elsewhere', 'cus_elsewhere'))::int,
            (select count(*) from public.subscription_items where subscription_id = 'sub_elsewhere')::int,
            (select count(*) from public.order_items where order_id = 'txn_elsewhere')::int $$,
  $$ values (0, 0, 0) $$,
  'deleting an account deletes its customer links, subscriptions, orders and their items');

select * from finish();
rollback;
