-- public.apply_billing_event, as billing-webhook calls it (service_role,
-- the provider-neutral event of crates/billing/src/event.rs): a
-- subscription's life (created, changed, canceled) with its items and
-- customer link; events out of order (stale) and delivered twice
-- (duplicate); how the account is found, and the events that fail (kept
-- for a redelivery, which then applies them); one-off orders and the
-- credits a paid one grants once; paid renewals and their credits; events
-- ignored or unreadable; and input refused outright (http_422).
begin;
create extension if not exists pgtap;
\ir _helpers.psql
\ir _billing.psql

do $$
begin
  perform tests.create_user('owner');
  perform tests.create_user('member');
  perform tests.create_user('solo');
  perform tests.create_user('rival');
  perform tests.create_team_account('owner', 'team');
  perform tests.add_member(tests.account_id('team'), 'member', 'member');
  perform tests.create_team_account('rival', 'rivals');

  -- Only this file's credit prices (dev/seed.sql adds demo ones).
  delete from public.billing_credit_prices;
  insert into public.billing_credit_prices (provider, price_id, credits, grant_on)
  values
    ('stripe', 'price_pack_100', 100, 'purchase'),
    ('stripe', 'price_pro_monthly', 50, 'renewal'),
    ('lemon-squeezy', '22222', 25, 'purchase'),
    ('lemon-squeezy', '11111', 30, 'renewal'),
    ('paddle', 'pri_pack', 40, 'purchase'),
    ('paddle', 'pri_seat', 10, 'renewal');
end
$$;

select plan(105);

/*
 * A subscription's life: created, changed, canceled
 */
select is(
  tests.apply(tests.event('stripe', 'evt_sub_created', 'customer.subscription.created', '2025-09-10T12:00:00Z',
    tests.account_id('team')::text, tests.customer('cus_team', 'billing@team.example'),
    tests.subscription_change('sub_team', 'active',
      jsonb_build_array(tests.subscription_item('price_pro_monthly', 1), tests.subscription_item('price_addon', 2))))),
  tests.answer('applied'),
  'a new subscription is applied');
select results_eq(
  $$ select account_id, status::text, active, billing_provider::text, cancel_at_period_end, currency::text,
            period_starts_at, period_ends_at, trial_starts_at, last_event_at
     from public.subscriptions where id = 'sub_team' $$,
  $$ values (tests.account_id('team'), 'active', true, 'stripe', false, 'USD',
             '2025-09-10T12:00:00Z'::timestamptz, '2025-10-10T12:00:00Z'::timestamptz, null::timestamptz,
             '2025-09-10T12:00:00Z'::timestamptz) $$,
  'the subscription row is as the event reports it, for the named account');
select results_eq(
  $$ select product_id, variant_id, type::text, quantity, interval, interval_count, price_amount
     from public.subscription_items where subscription_id = 'sub_team' order by variant_id $$,
  $$ values ('prod_price_addon', 'price_addon', 'flat', 2, 'month', 1, 1500::numeric),
            ('prod_price_pro_monthly', 'price_pro_monthly', 'flat', 1, 'month', 1, 1500::numeric) $$,
  'its items are stored with every field');
select results_eq(
  $$ select c.account_id, c.email, s.billing_customer_id = c.id
     from public.billing_customers c cross join public.subscriptions s
     where c.provider = 'stripe' and c.customer_id = 'cus_team' and s.id = 'sub_team' $$,
  $$ values (tests.account_id('team'), 'billing@team.example', true) $$,
  'the customer is linked to the account on the way, and the subscription names the link');
select results_eq(
  $$ select type, occurred_at, processed_at is not null, outcome::text, error, attempts
     from public.billing_events where provider = 'stripe' and event_id = 'evt_sub_created' $$,
  $$ values ('customer.subscription.created', '2025-09-10T12:00:00Z'::timestamptz, true, 'applied', null::text, 1) $$,
  'the event is recorded as processed and applied, in the same transaction');

select is(
  tests.apply(tests.event('stripe', 'evt_sub_updated', 'customer.subscription.updated', '2025-09-11T12:00:00Z',
    tests.account_id('team')::text, tests.customer('cus_team', null),
    tests.subscription_change('sub_team', 'active',
      jsonb_build_array(tests.subscription_item('price_pro_monthly', 3),
                        tests.subscription_item('price_seats', 5, 'per_seat')),
      cancel_at_period_end => true, period_ends_at => '2025-11-10T12:00:00Z'))),
  tests.answer('applied'),
  'a newer change to the subscription is applied');
select is(tests.items('sub_team'), array['price_pro_monthly x3 (flat)', 'price_seats x5 (per_seat)'],
  'its items are replaced: the one no longer listed deleted, the new one inserted, the quantity changed');
select results_eq(
  $$ select count(*)::int, bool_and(cancel_at_period_end), max(period_ends_at), max(last_event_at)
     from public.subscriptions where id = 'sub_team' $$,
  $$ values (1, true, '2025-11-10T12:00:00Z'::timestamptz, '2025-09-11T12:00:00Z'::timestamptz) $$,
  'the same row now ends at the period''s end, changed by the newer event');
select results_eq(
  $$ select count(*)::int, max(email) from public.billing_customers where provider = 'stripe' and customer_id = 'cus_team' $$,
  $$ values (1, 'billing@team.example') $$,
  'the customer stays linked once, its email kept when an event has none');

select is(
  tests.apply(tests.event('stripe', 'evt_sub_old', 'customer.subscription.updated', '2025-09-11T00:00:00Z',
    tests.account_id('team')::text, tests.customer('cus_team', 'old@team.example'),
    tests.subscription_change('sub_team', 'incomplete', jsonb_build_array(tests.subscription_item('price_old', 9))))),
  tests.answer('stale'),
  'an event older than the last one applied is stale');
select results_eq(
  $$ select status::text, cancel_at_period_end, last_event_at from public.subscriptions where id = 'sub_team' $$,
  $$ values ('active', true, '2025-09-11T12:00:00Z'::timestamptz) $$,
  'a stale event leaves the subscription as it was');
select is(tests.items('sub_team'), array['price_pro_monthly x3 (flat)', 'price_seats x5 (per_seat)'],
  'and its items');
select results_eq(
  $$ select * from tests.recorded('stripe', 'evt_sub_old') $$,
  $$ values (true, 'stale', null::text, 1) $$,
  'a stale event is recorded as processed, outcome stale');

select is(
  tests.apply(tests.event('stripe', 'evt_sub_same_time', 'customer.subscription.updated', '2025-09-11T12:00:00Z',
    tests.account_id('team')::text, null,
    tests.subscription_change('sub_team', 'past_due',
      jsonb_build_array(tests.subscription_item('price_pro_monthly', 3),
                        tests.subscription_item('price_seats', 6, 'per_seat'))))),
  tests.answer('applied'),
  'an event as old as the last one applied is applied, not stale');
select results_eq(
  $$ select status::text, active, cancel_at_period_end, last_event_at from public.subscriptions where id = 'sub_team' $$,
  $$ values ('past_due', false, false, '2025-09-11T12:00:00Z'::timestamptz) $$,
  'the subscription takes its state');
select is(tests.items('sub_team'), array['price_pro_monthly x3 (flat)', 'price_seats x6 (per_seat)'],
  'and its seats');

select is(
  tests.apply(tests.event('stripe', 'evt_sub_deleted', 'customer.subscription.deleted', '2025-09-12T12:00:00Z',
    tests.account_id('team')::text, tests.customer('cus_team', 'billing@team.example'),
    tests.subscription_change('sub_team', 'canceled',
      jsonb_build_array(tests.subscription_item('price_pro_monthly', 3),
                        tests.subscription_item('price_seats', 6, 'per_seat'))))),
  tests.answer('applied'),
  'the cancellation is applied');
select results_eq(
  $$ select status::text, active, last_event_at from public.subscriptions where id = 'sub_team' $$,
  $$ values ('canceled', false, '2025-09-12T12:00:00Z'::timestamptz) $$,
  'the subscription is canceled and no longer active');

/*
 * Duplicates
 */
-- Changed by hand, so a duplicate applied again would show.
update public.subscriptions set status = 'unpaid' where id = 'sub_team';

select is(
  tests.apply(tests.event('stripe', 'evt_sub_deleted', 'customer.subscription.deleted', '2025-09-12T12:00:00Z',
    tests.account_id('team')::text, tests.customer('cus_team', 'billing@team.example'),
    tests.subscription_change('sub_team', 'canceled',
      jsonb_build_array(tests.subscription_item('price_pro_monthly', 3))))),
  tests.duplicate('applied'),
  'a second delivery of an applied event is a duplicate, saying what it did');
select results_eq(
  $$ select status::text, (select count(*)::int from public.subscription_items where subscription_id = 'sub_team')
     from public.subscriptions where id = 'sub_team' $$,
  $$ values ('unpaid', 2) $$,
  'a duplicate changes nothing, although applying it again would have');
select results_eq(
  $$ select count(*)::int, max(attempts) from public.billing_events where provider = 'stripe' and event_id = 'evt_sub_deleted' $$,
  $$ values (1, 1) $$,
  'a duplicate adds no ledger row and no attempt');
select is(
  tests.apply(tests.event('stripe', 'evt_sub_old', 'customer.subscription.updated', '2025-09-11T00:00:00Z',
    null, null, '{"kind": "ignored", "reason": "the body does not matter"}')),
  tests.duplicate('stale'),
  'a duplicate of a stale event says it was stale');

update public.subscriptions set status = 'canceled' where id = 'sub_team';

/*
 * Finding the account
 */
select is(
  tests.apply(tests.event('stripe', 'evt_sub2_created', 'customer.subscription.created', '2025-09-10T12:00:00Z',
    null, tests.customer('cus_team'),
    tests.subscription_change('sub_team_2', 'trialing', jsonb_build_array(tests.subscription_item('price_pro_monthly', 1))))),
  tests.answer('applied'),
  'an event naming no account but a linked customer is applied');
select results_eq(
  $$ select account_id, billing_customer_id from public.subscriptions where id = 'sub_team_2' $$,
  $$ values (tests.account_id('team'), tests.customer_link('stripe', 'cus_team')) $$,
  'to the account the customer is linked to');

select is(
  tests.apply(tests.event('stripe', 'evt_sub_reactivated', 'customer.subscription.updated', '2025-09-13T12:00:00Z',
    null, null,
    tests.subscription_change('sub_team', 'active', jsonb_build_array(tests.subscription_item('price_pro_monthly', 1))))),
  tests.answer('applied'),
  'an event naming neither account nor customer, for a stored subscription, is applied');
select results_eq(
  $$ select account_id, status::text, last_event_at, billing_customer_id from public.subscriptions where id = 'sub_team' $$,
  $$ values (tests.account_id('team'), 'active', '2025-09-13T12:00:00Z'::timestamptz, tests.customer_link('stripe', 'cus_team')) $$,
  'to the subscription''s account, keeping its customer link');

select is(
  tests.apply(tests.event('stripe', 'evt_sub_orphan', 'customer.subscription.created', '2025-09-10T12:00:00Z',
    null, tests.customer('cus_nobody', 'nobody@example.com'),
    tests.subscription_change('sub_orphan', 'active', jsonb_build_array(tests.subscription_item('price_pro_monthly', 1))))),
  tests.failed('no account is known for stripe customer cus_nobody: pass the account id at checkout'),
  'an event whose account cannot be found fails, saying why');
select results_eq(
  $$ select * from tests.recorded('stripe', 'evt_sub_orphan') $$,
  $$ values (false, 'failed', 'no account is known for stripe customer cus_nobody: pass the account id at checkout', 1) $$,
  'it is recorded unprocessed, failed, with the error, for a redelivery');
select results_eq(
  $$ select (select count(*) from public.subscriptions where id = 'sub_orphan')::int,
            (select count(*) from public.billing_customers where customer_id = 'cus_nobody')::int $$,
  $$ values (0, 0) $$,
  'and nothing of it is written: no subscription, no customer link');

select is(
  tests.apply(tests.event('stripe', 'evt_checkout_nobody', 'checkout.session.completed', '2025-09-10T12:00:01Z',
    tests.user_id('solo')::text, tests.customer('cus_nobody'), '{"kind": "customer"}')),
  tests.answer('applied'),
  'a checkout naming the account links its customer');
select results_eq(
  $$ select account_id, email from public.billing_customers where customer_id = 'cus_nobody' $$,
  $$ values (tests.user_id('solo'), null::text) $$,
  'to solo''s personal account');
select is(
  tests.apply(tests.event('stripe', 'evt_sub_orphan', 'customer.subscription.created', '2025-09-10T12:00:00Z',
    null, tests.customer('cus_nobody', 'nobody@example.com'),
    tests.subscription_change('sub_orphan', 'active', jsonb_build_array(tests.subscription_item('price_pro_monthly', 1))))),
  tests.answer('applied'),
  'the failed event''s redelivery, once the customer is linked, is applied');
select results_eq(
  $$ select * from tests.recorded('stripe', 'evt_sub_orphan') $$,
  $$ values (true, 'applied', null::text, 2) $$,
  'its ledger row is now processed, applied, the error cleared, two attempts counted');
select results_eq(
  $$ select s.account_id, c.email from public.subscriptions s join public.billing_customers c on c.id = s.billing_customer_id
     where s.id = 'sub_orphan' $$,
  $$ values (tests.user_id('solo'), 'nobody@example.com') $$,
  'the subscription is solo''s, and the link has the email the event gave');

select is(
  tests.apply(tests.event('stripe', 'evt_unknown_account', 'customer.subscription.created', '2025-09-10T12:00:00Z',
    '00000000-0000-4000-8000-00000000dead', tests.customer('cus_ghost'),
    tests.subscription_change('sub_ghost', 'active', jsonb_build_array(tests.subscription_item('price_pro_monthly', 1))))),
  tests.failed('unknown account 00000000-0000-4000-8000-00000000dead'),
  'an event naming an account that does not exist fails');
select is(
  tests.apply(tests.event('stripe', 'evt_bad_account', 'customer.subscription.created', '2025-09-10T12:00:00Z',
    'acct_123', tests.customer('cus_ghost'),
    tests.subscription_change('sub_ghost', 'active', jsonb_build_array(tests.subscription_item('price_pro_monthly', 1))))),
  tests.failed('the account id acct_123 is not a uuid'),
  'an event naming an account id that is not a uuid fails');
select results_eq(
  $$ select (select count(*) from public.subscriptions where id = 'sub_ghost')::int,
            (select count(*) from public.billing_customers where customer_id = 'cus_ghost')::int,
            (select count(*) from public.billing_events
             where event_id in ('evt_unknown_account', 'evt_bad_account') and outcome = 'failed' and processed_at is null)::int $$,
  $$ values (0, 0, 2) $$,
  'neither writes anything but its failed ledger row');

select is(
  tests.apply(tests.event('stripe', 'evt_hijack', 'customer.subscription.updated', '2025-09-14T12:00:00Z',
    tests.account_id('rivals')::text, tests.customer('cus_rival'),
    tests.subscription_change('sub_team', 'active', jsonb_build_array(tests.subscription_item('price_pro_monthly', 100))))),
  tests.failed('subscription sub_team belongs to another account'),
  'an event putting another account''s subscription id on an account fails');
select results_eq(
  $$ select account_id, last_event_at, tests.items(id),
            (select count(*) from public.billing_customers where customer_id = 'cus_rival')::int
     from public.subscriptions where id = 'sub_team' $$,
  $$ values (tests.account_id('team'), '2025-09-13T12:00:00Z'::timestamptz, array['price_pro_monthly x1 (flat)'], 0) $$,
  'the subscription is untouched, and the customer link the event brought undone');
select is(
  tests.apply(tests.event('paddle', 'evt_other_provider', 'subscription.updated', '2025-09-14T12:00:00Z',
    tests.account_id('team')::text, null,
    tests.subscription_change('sub_team', 'active', jsonb_build_array(tests.subscription_item('pri_seat', 1))))),
  tests.failed('subscription sub_team belongs to another account'),
  'so does one from another provider reusing the id');
select is(
  tests.apply(tests.event('stripe', 'evt_no_items', 'customer.subscription.updated', '2025-09-14T12:00:00Z',
    tests.account_id('team')::text, null,
    '{"kind": "subscription", "subscription": {"id": "sub_team", "status": "active", "active": true}}')),
  tests.failed('the subscription has no id or no items'),
  'a subscription without its items fails rather than deleting them');
select is(
  tests.apply(tests.event('stripe', 'evt_bad_status', 'customer.subscription.updated', '2025-09-14T12:00:00Z',
    tests.account_id('team')::text, null,
    tests.subscription_change('sub_team', 'bogus', jsonb_build_array(tests.subscription_item('price_pro_monthly', 1))))),
  tests.failed('the database refused the event (22P02); see billing_events'),
  'a status the database does not know fails, naming only the SQLSTATE to the provider');
select is(
  (select error from public.billing_events where event_id = 'evt_bad_status'),
  'invalid input value for enum public.subscription_status: "bogus"',
  'the ledger keeps the database''s own words for operators');

/*
 * One-off orders and purchase credits
 */
select is(
  tests.apply(tests.event('stripe', 'evt_cs_completed', 'checkout.session.completed', '2025-09-10T12:00:00Z',
    tests.account_id('team')::text, tests.customer('cus_team'),
    tests.order_change('cs_pack_1', 'pending', jsonb_build_array(tests.order_item('price_pack_100', 2))))),
  tests.answer('applied'),
  'a pending order is applied');
select results_eq(
  $$ select o.account_id, o.status::text, o.billing_provider::text, o.total_amount, o.currency::text, o.last_event_at,
            o.billing_customer_id = tests.customer_link('stripe', 'cus_team'), i.variant_id, i.quantity, i.price_amount
     from public.orders o join public.order_items i on i.order_id = o.id where o.id = 'cs_pack_1' $$,
  $$ values (tests.account_id('team'), 'pending', 'stripe', 2000::numeric, 'USD', '2025-09-10T12:00:00Z'::timestamptz,
             true, 'price_pack_100', 2, 1000::numeric) $$,
  'the order and its item are stored as reported');
select results_eq(
  $$ select tests.credits('owner'), (select count(*)::int from tests.credit_rows('stripe:cs_pack_1')) $$,
  $$ values (300, 0) $$,
  'a pending order grants nothing yet');

select is(
  tests.apply(tests.event('stripe', 'evt_cs_async_succeeded', 'checkout.session.async_payment_succeeded',
    '2025-09-11T12:00:00Z', tests.account_id('team')::text, tests.customer('cus_team'),
    tests.order_change('cs_pack_1', 'succeeded', jsonb_build_array(tests.order_item('price_pack_100', 2))))),
  tests.answer('applied', 200),
  'the order''s payment succeeding grants its credits: 2 packs of 100');
select is(
  (select status::text from public.orders where id = 'cs_pack_1'), 'succeeded',
  'the order is succeeded');
select results_eq(
  $$ select * from tests.credit_rows('stripe:cs_pack_1') $$,
  $$ values (tests.user_id('owner'), 200, 'purchase') $$,
  'to the team''s primary owner, as one purchase row referenced <provider>:<order id>');
select is(
  array[tests.credits('owner'), tests.ledger_sum('owner'), tests.credits('member')],
  array[500, 500, 300],
  'the owner''s balance rises by 200 and equals their ledger; the member''s does not move');

select is(
  tests.apply(tests.event('stripe', 'evt_cs_async_succeeded', 'checkout.session.async_payment_succeeded',
    '2025-09-11T12:00:00Z', tests.account_id('team')::text, tests.customer('cus_team'),
    tests.order_change('cs_pack_1', 'succeeded', jsonb_build_array(tests.order_item('price_pack_100', 2))))),
  tests.duplicate('applied'),
  'the payment''s redelivery is a duplicate and grants nothing');
select is(
  tests.apply(tests.event('stripe', 'evt_cs_completed_again', 'checkout.session.completed', '2025-09-12T12:00:00Z',
    tests.account_id('team')::text, tests.customer('cus_team'),
    tests.order_change('cs_pack_1', 'succeeded', jsonb_build_array(tests.order_item('price_pack_100', 2))))),
  tests.answer('applied', 0),
  'another event saying the same order succeeded is applied but grants nothing more');
select results_eq(
  $$ select tests.credits('owner'), (select count(*)::int from tests.credit_rows('stripe:cs_pack_1')) $$,
  $$ values (500, 1) $$,
  'the order''s credits were granted once');
select is(
  tests.apply(tests.event('stripe', 'evt_cs_more_items', 'checkout.session.completed', '2025-09-12T12:30:00Z',
    tests.account_id('team')::text, tests.customer('cus_team'),
    tests.order_change('cs_pack_1', 'succeeded', jsonb_build_array(tests.order_item('price_pack_100', 3))))),
  tests.answer('applied', 0),
  'a paid order reported again with other items is applied, without a second (conflicting) grant');

select is(
  tests.apply(tests.event('stripe', 'evt_cs_pending_late', 'checkout.session.completed', '2025-09-13T12:00:00Z',
    tests.account_id('team')::text, tests.customer('cus_team'),
    tests.order_change('cs_pack_1', 'pending', jsonb_build_array(tests.order_item('price_pack_100', 2))))),
  tests.answer('stale'),
  'a newer event taking a succeeded order back to pending is stale');
select results_eq(
  $$ select status::text, last_event_at from public.orders where id = 'cs_pack_1' $$,
  $$ values ('succeeded', '2025-09-12T12:30:00Z'::timestamptz) $$,
  'the order stays succeeded');

select is(
  tests.apply(tests.event('stripe', 'evt_cs_failed', 'checkout.session.async_payment_failed', '2025-09-10T12:00:00Z',
    tests.account_id('team')::text, tests.customer('cus_team'),
    tests.order_change('cs_pack_2', 'failed', jsonb_build_array(tests.order_item('price_pack_100', 1))))),
  tests.answer('applied'),
  'a failed order is applied');
select results_eq(
  $$ select (select status::text from public.orders where id = 'cs_pack_2'),
            (select count(*)::int from tests.credit_rows('stripe:cs_pack_2')), tests.credits('owner') $$,
  $$ values ('failed', 0, 500) $$,
  'and grants nothing');

select is(
  tests.apply(tests.event('stripe', 'evt_cs_plan', 'checkout.session.completed', '2025-09-10T12:00:00Z',
    tests.account_id('team')::text, null,
    tests.order_change('cs_plan_1', 'succeeded', jsonb_build_array(tests.order_item('price_pro_monthly', 1))))),
  tests.answer('applied', 0),
  'a price that grants on renewal grants nothing on a one-off order');

select is(
  tests.apply(tests.event('lemon-squeezy', 'ls_order_created_1001', 'order_created', '2025-09-10T12:00:00Z',
    tests.user_id('solo')::text, tests.customer('ls_cus_solo', 'solo@test.local'),
    tests.order_change('1001', 'succeeded',
      jsonb_build_array(tests.order_item('22222', 3), tests.order_item('99999', 1))))),
  tests.answer('applied', 75),
  'credits are per unit, times the quantity; a variant not in billing_credit_prices adds nothing');
select results_eq(
  $$ select *, tests.credits('solo') from tests.credit_rows('lemon-squeezy:1001') $$,
  $$ values (tests.user_id('solo'), 75, 'purchase', 375) $$,
  'a personal account''s purchase goes to its user');
select is(
  tests.apply(tests.event('paddle', 'paddle_txn_completed_1', 'transaction.completed', '2025-09-10T12:00:00Z',
    tests.user_id('solo')::text, null,
    tests.order_change('txn_1', 'succeeded',
      jsonb_build_array(tests.order_item('price_pack_100', 1), tests.order_item('pri_pack', 2))))),
  tests.answer('applied', 80),
  'a price id configured for another provider counts for nothing');

select is(
  tests.apply(tests.event('stripe', 'evt_cs_hijack', 'checkout.session.completed', '2025-09-14T12:00:00Z',
    tests.account_id('rivals')::text, null,
    tests.order_change('cs_pack_1', 'succeeded', jsonb_build_array(tests.order_item('price_pack_100', 2))))),
  tests.failed('order cs_pack_1 belongs to another account'),
  'an event putting another account''s order id on an account fails');
select results_eq(
  $$ select (select account_id from public.orders where id = 'cs_pack_1'), tests.credits('rival') $$,
  $$ values (tests.account_id('team'), 300) $$,
  'the order stays the team''s and nobody is granted anything');
select is(
  tests.apply(tests.event('stripe', 'evt_cs_no_items', 'checkout.session.completed', '2025-09-14T12:00:00Z',
    tests.account_id('team')::text, null,
    '{"kind": "order", "order": {"id": "cs_pack_3", "status": "succeeded", "total_amount": null, "currency": null}}')),
  tests.failed('the order has no id, status or items'),
  'an order without its items fails');

/*
 * Paid renewals
 */
select is(
  tests.apply(tests.event('stripe', 'evt_invoice_paid_1', 'invoice.paid', '2025-09-14T12:00:00Z',
    tests.account_id('team')::text, tests.customer('cus_team'),
    tests.payment_change('sub_team', 'in_001',
      jsonb_build_array(tests.paid_item('price_pro_monthly', 2), tests.paid_item('price_addon', 1))))),
  tests.answer('applied', 100),
  'a paid period grants the renewal credits of the prices paid, times the quantity');
select results_eq(
  $$ select * from tests.credit_rows('stripe:in_001') $$,
  $$ values (tests.user_id('owner'), 100, 'renewal') $$,
  'to the account''s primary owner, as one renewal row referenced <provider>:<reference>');
select is(
  tests.apply(tests.event('stripe', 'evt_invoice_payment_succeeded_1', 'invoice.payment_succeeded', '2025-09-14T12:00:01Z',
    tests.account_id('team')::text, tests.customer('cus_team'),
    tests.payment_change('sub_team', 'in_001',
      jsonb_build_array(tests.paid_item('price_pro_monthly', 2), tests.paid_item('price_addon', 1))))),
  tests.answer('applied', 0),
  'another event for the same payment grants nothing more');
select results_eq(
  $$ select tests.credits('owner'), (select count(*)::int from tests.credit_rows('stripe:in_001')) $$,
  $$ values (600, 1) $$,
  'renewal credits are granted once per reference');
select is(
  tests.apply(tests.event('stripe', 'evt_invoice_paid_2', 'invoice.paid', '2025-09-14T12:00:00Z',
    tests.account_id('team')::text, null,
    tests.payment_change('sub_team', 'in_002', jsonb_build_array(tests.paid_item('price_pack_100', 1))))),
  tests.answer('applied', 0),
  'a price that grants on purchase grants nothing on a renewal');
select is(
  tests.apply(tests.event('stripe', 'evt_invoice_paid_3', 'invoice.paid', '2025-09-14T12:00:00Z',
    null, null,
    tests.payment_change('sub_team', 'in_003', jsonb_build_array(tests.paid_item('price_pro_monthly', 1))))),
  tests.answer('applied', 50),
  'a payment naming only its subscription grants to the subscription''s account');
select is(
  tests.apply(tests.event('stripe', 'evt_invoice_paid_4', 'invoice.paid', '2025-09-14T12:00:00Z',
    tests.account_id('team')::text, null,
    tests.payment_change('sub_team', 'in_004', '[]'))),
  tests.answer('applied', 0),
  'a payment listing no items grants nothing (it does not fall back to the stored items)');

select is(
  tests.apply(tests.event('lemon-squeezy', 'ls_subscription_created_1', 'subscription_created', '2025-09-10T12:00:00Z',
    tests.user_id('solo')::text, tests.customer('ls_cus_solo'),
    tests.subscription_change('ls_sub_1', 'active', jsonb_build_array(tests.subscription_item('11111', 2))))),
  tests.answer('applied'),
  'a Lemon Squeezy subscription is applied');
select is(
  tests.apply(tests.event('lemon-squeezy', 'ls_subscription_payment_success_1', 'subscription_payment_success',
    '2025-09-10T12:00:05Z', null, tests.customer('ls_cus_solo'),
    tests.payment_change('ls_sub_1', 'inv_1', null))),
  tests.answer('applied', 60),
  'a payment without items (items null) grants what the stored subscription''s items are worth');
select results_eq(
  $$ select * from tests.credit_rows('lemon-squeezy:inv_1') $$,
  $$ values (tests.user_id('solo'), 60, 'renewal') $$,
  'to the account the customer is linked to');

select is(
  tests.apply(tests.event('paddle', 'paddle_txn_completed_r1', 'transaction.completed', '2025-09-10T12:00:05Z',
    tests.user_id('solo')::text, null,
    tests.payment_change('sub_paddle_1', 'txn_r1', null))),
  tests.failed('subscription sub_paddle_1 is not stored yet'),
  'a payment without items for a subscription not stored yet fails');
select results_eq(
  $$ select * from tests.recorded('paddle', 'paddle_txn_completed_r1') $$,
  $$ values (false, 'failed', 'subscription sub_paddle_1 is not stored yet', 1) $$,
  'and is kept for a redelivery');
select is(
  tests.apply(tests.event('paddle', 'paddle_subscription_created_1', 'subscription.created', '2025-09-10T12:00:00Z',
    tests.user_id('solo')::text, null,
    tests.subscription_change('sub_paddle_1', 'active', jsonb_build_array(tests.subscription_item('pri_seat', 3, 'per_seat'))))),
  tests.answer('applied'),
  'the subscription arrives');
select is(
  tests.apply(tests.event('paddle', 'paddle_txn_completed_r1', 'transaction.completed', '2025-09-10T12:00:05Z',
    tests.user_id('solo')::text, null,
    tests.payment_change('sub_paddle_1', 'txn_r1', null))),
  tests.answer('applied', 30),
  'the payment''s redelivery is then applied: 3 seats of 10');
select results_eq(
  $$ select r.processed, r.outcome, r.attempts, c.amount, c.reason
     from tests.recorded('paddle', 'paddle_txn_completed_r1') r cross join tests.credit_rows('paddle:txn_r1') c $$,
  $$ values (true, 'applied', 2, 30, 'renewal') $$,
  'recorded applied after two attempts, with one renewal row');
select is(
  tests.apply(tests.event('stripe', 'evt_invoice_paid_orphan', 'invoice.paid', '2025-09-14T12:00:00Z',
    null, null, tests.payment_change('sub_unknown', 'in_999', null))),
  tests.failed('no account is known for stripe customer (none): pass the account id at checkout'),
  'a payment whose account cannot be found fails');

/*
 * Events with nothing to apply
 */
select is(
  tests.apply(tests.event('stripe', 'evt_customer_created', 'customer.created', '2025-09-10T12:00:00Z',
    null, tests.customer('cus_new'), '{"kind": "ignored", "reason": "customer.created is not used"}')),
  tests.answer('ignored'),
  'an event of a type not used is ignored');
select results_eq(
  $$ select r.*, (select count(*)::int from public.billing_customers where customer_id = 'cus_new')
     from tests.recorded('stripe', 'evt_customer_created') r $$,
  $$ values (true, 'ignored', null::text, 1, 0) $$,
  'it is recorded as processed, outcome ignored, and writes nothing else');
select is(
  tests.apply(tests.event('stripe', 'evt_customer_created', 'customer.created', '2025-09-10T12:00:00Z',
    null, tests.customer('cus_new'), '{"kind": "ignored", "reason": "customer.created is not used"}')),
  tests.duplicate('ignored'),
  'its redelivery is a duplicate of an ignored event');

select is(
  tests.apply(tests.event('paddle', 'paddle_unreadable', 'subscription.updated', '2025-09-10T12:00:00Z',
    null, null, '{"kind": "invalid", "error": "data.items is missing"}')),
  tests.failed('data.items is missing'),
  'an event billing-webhook could not read fails with its error');
select results_eq(
  $$ select * from tests.recorded('paddle', 'paddle_unreadable') $$,
  $$ values (false, 'failed', 'data.items is missing', 1) $$,
  'it is recorded unprocessed and failed, with the error');
select is(
  tests.apply(tests.event('paddle', 'paddle_unreadable', 'subscription.updated', '2025-09-10T12:00:00Z',
    null, null, '{"kind": "invalid", "error": "data.items is missing"}')),
  tests.failed('data.items is missing'),
  'its redelivery fails again');
select results_eq(
  $$ select * from tests.recorded('paddle', 'paddle_unreadable') $$,
  $$ values (false, 'failed', 'data.items is missing', 2) $$,
  'with one attempt more, still one row');
select is(
  tests.apply(tests.event('stripe', 'evt_refund', 'charge.refunded', '2025-09-10T12:00:00Z',
    null, null, '{"kind": "refund"}')),
  tests.failed('unknown change kind refund'),
  'a change of a kind the database does not know fails');
select is(
  tests.apply(tests.event('stripe', 'evt_no_kind', 'charge.refunded', '2025-09-10T12:00:00Z',
    null, null, '{}')),
  tests.failed('unknown change kind (none)'),
  'a change without a kind fails');

/*
 * Input refused outright: http_422, nothing written
 */
create temporary table counts_before on commit drop as
select (select count(*) from public.billing_events) as events,
       (select count(*) from public.billing_customers) as customers;

select throws_ok(
  format('select tests.apply(%L)', '{"event_id": "evt_422", "type": "invoice.paid",
    "occurred_at": "2025-09-10T12:00:00Z", "change": {"kind": "ignored", "reason": "x"}}'),
  'P0001', 'http_422: An event needs a provider, event_id, type, occurred_at and change',
  'an event without a provider is refused with http_422');
select throws_ok(
  format('select tests.apply(%L)', '{"provider": "paypal", "event_id": "evt_422", "type": "invoice.paid",
    "occurred_at": "2025-09-10T12:00:00Z", "change": {"kind": "ignored", "reason": "x"}}'),
  'P0001', 'http_422: The event''s provider or occurred_at is not valid',
  'an event from an unknown provider is refused with http_422');
select throws_ok(
  format('select tests.apply(%L)', '{"provider": "Stripe", "event_id": "evt_422", "type": "invoice.paid",
    "occurred_at": "2025-09-10T12:00:00Z", "change": {"kind": "ignored", "reason": "x"}}'),
  'P0001', 'http_422: The event''s provider or occurred_at is not valid',
  'provider names are exact: Stripe is not stripe');
select throws_ok(
  format('select tests.apply(%L)', '{"provider": "stripe", "type": "invoice.paid",
    "occurred_at": "2025-09-10T12:00:00Z", "change": {"kind": "ignored", "reason": "x"}}'),
  'P0001', 'http_422: An event needs a provider, event_id, type, occurred_at and change',
  'an event without an event_id is refused with http_422');
select throws_ok(
  format('select tests.apply(%L)', '{"provider": "stripe", "event_id": "   ", "type": "invoice.paid",
    "occurred_at": "2025-09-10T12:00:00Z", "change": {"kind": "ignored", "reason": "x"}}'),
  'P0001', 'http_422: An event needs a provider, event_id, type, occurred_at and change',
  'an event with a blank event_id is refused with http_422');
select throws_ok(
  format('select tests.apply(%L)', '{"provider": "stripe", "event_id": "evt_422",
    "occurred_at": "2025-09-10T12:00:00Z", "change": {"kind": "ignored", "reason": "x"}}'),
  'P0001', 'http_422: An event needs a provider, event_id, type, occurred_at and change',
  'an event without a type is refused with http_422');
select throws_ok(
  format('select tests.apply(%L)', '{"provider": "stripe", "event_id": "evt_422", "type": "invoice.paid",
    "change": {"kind": "ignored", "reason": "x"}}'),
  'P0001', 'http_422: An event needs a provider, event_id, type, occurred_at and change',
  'an event without occurred_at is refused with http_422');
select throws_ok(
  format('select tests.apply(%L)', '{"provider": "stripe", "event_id": "evt_422", "type": "invoice.paid",
    "occurred_at": "not a time", "change": {"kind": "ignored", "reason": "x"}}'),
  'P0001', 'http_422: The event''s provider or occurred_at is not valid',
  'an event whose occurred_at is not a time is refused with http_422');
select throws_ok(
  format('select tests.apply(%L)', '{"provider": "stripe", "event_id": "evt_422", "type": "invoice.paid",
    "occurred_at": "2025-09-10T12:00:00Z"}'),
  'P0001', 'http_422: An event needs a provider, event_id, type, occurred_at and change',
  'an event without a change is refused with http_422');
select throws_ok(
  format('select tests.apply(%L)', '{"provider": "stripe", "event_id": "evt_422", "type": "invoice.paid",
    "occurred_at": "2025-09-10T12:00:00Z", "change": "subscription"}'),
  'P0001', 'http_422: An event needs a provider, event_id, type, occurred_at and change',
  'an event whose change is a string is refused with http_422');
select throws_ok(
  format('select tests.apply(%L)', '{"provider": "stripe", "event_id": "evt_422", "type": "invoice.paid",
    "occurred_at": "2025-09-10T12:00:00Z", "change": [{"kind": "ignored"}]}'),
  'P0001', 'http_422: An event needs a provider, event_id, type, occurred_at and change',
  'an event whose change is an array is refused with http_422');
select throws_ok(
  'select tests.apply(null)',
  'P0001', 'http_422: An event needs a provider, event_id, type, occurred_at and change',
  'no event at all is refused with http_422');
select results_eq(
  $$ select (select count(*) from public.billing_events), (select count(*) from public.billing_customers),
            (select count(*) from public.billing_events where event_id = 'evt_422') $$,
  $$ select events, customers, 0::bigint from counts_before $$,
  'refused input writes nothing');

/*
 * Every balance still equals its ledger
 */
select is(
  (select array_agg(tests.credits(u.handle) = tests.ledger_sum(u.handle) order by u.handle) from tests.users u),
  array[true, true, true, true],
  'every balance equals the sum of its ledger');
select is(
  array[tests.credits('owner'), tests.credits('member'), tests.credits('solo'), tests.credits('rival')],
  array[650, 300, 300 + 75 + 80 + 60 + 30, 300],
  'the owner got 200 + 100 + 50, solo 75 + 80 + 60 + 30, the others nothing');

select * from finish();
rollback;
