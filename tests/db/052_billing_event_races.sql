-- public.apply_billing_event under concurrency, as a provider retrying
-- impatiently or several workers delivering at once would run it: ten
-- deliveries of one event apply it once (nine duplicates, one ledger row,
-- credits granted once); ten different events for one payment grant its
-- credits once; events for a subscription nobody has stored yet, racing
-- to create it, end in one row in the newest event's state. A session
-- cannot race itself, so more sessions are opened with dblink, each
-- calling apply_billing_event in its own transaction as service_role, as
-- PostgREST would for billing-webhook.
--
-- As in 034_credit_concurrency.sql, a 'holder' session first takes the lock
-- the racers all need (the event's ledger row, the user's profile, the
-- subscriptions table), the racers are sent their calls and seen waiting
-- on it, and only then does the holder let them go, so they really start
-- together. This session only reads and waits for answers. Every session
-- has a statement_timeout, so a mistake ends in a failed test rather than
-- a hang.
--
-- What the sessions write is committed, so the fixtures are committed too
-- and deleted at the end: a user (whose personal account holds the
-- subscriptions and orders, and whose profile the credits), a credit price
-- and the events, all with fixed ids, deleted first as well in case an
-- earlier run stopped half-way.
\ir _dblink.psql
\if :can_race
begin;
create extension if not exists pgtap;
\ir _helpers.psql
\ir _sessions.psql
\ir _billing_races.psql

set local statement_timeout = '90s';

-- A subscription with a per-seat item, and extra_items flat ones more.
create function tests.race_subscription(id text, status text, seats integer, extra_items integer default 0)
returns jsonb
language sql
immutable
as $$
  select jsonb_build_object('kind', 'subscription', 'subscription', jsonb_build_object(
    'id', race_subscription.id, 'status', race_subscription.status,
    'active', race_subscription.status in ('active', 'trialing'), 'cancel_at_period_end', false,
    'currency', 'EUR', 'period_starts_at', null, 'period_ends_at', null,
    'trial_starts_at', null, 'trial_ends_at', null,
    'items', jsonb_build_array(jsonb_build_object(
      'product_id', 'prod_race', 'variant_id', 'price_race_seat', 'type', 'per_seat',
      'quantity', race_subscription.seats, 'interval', 'month', 'interval_count', 1, 'price_amount', 700))
      || (select coalesce(jsonb_agg(jsonb_build_object(
            'product_id', 'prod_race', 'variant_id', 'price_race_extra_' || n, 'type', 'flat',
            'quantity', 1, 'interval', 'month', 'interval_count', 1, 'price_amount', 100)), '[]')
          from generate_series(1, race_subscription.extra_items) as n)));
$$;

create temporary table racers on commit drop as
select array_agg('racer' || n order by n) as names from generate_series(1, 10) as n;

-- The holder sets up the committed fixtures: the user (with the sign-up
-- grant of 300 credits) and a renewal price of 7 credits a seat.
select tests.open_session('holder');
select dblink_exec('holder', $sql$
  delete from public.billing_events where provider = 'stripe' and event_id like 'evt\_race\_%';
  delete from public.billing_credit_prices where provider = 'stripe' and price_id = 'price_race_seat';
  delete from auth.users where id = '00000000-0000-4000-8000-0000000bb001';
  insert into auth.users (instance_id, id, aud, role, email, raw_user_meta_data, created_at, updated_at)
  values ('00000000-0000-0000-0000-000000000000', '00000000-0000-4000-8000-0000000bb001', 'authenticated',
          'authenticated', 'billing-racer@test.local', '{"name": "Billing Racer"}', now(), now());
  insert into public.billing_credit_prices (provider, price_id, credits, grant_on)
  values ('stripe', 'price_race_seat', 7, 'renewal');
$sql$);

-- Ten sessions with the service key.
select tests.open_session(name, $sql$
  set request.jwt.claims = '{"role": "service_role"}';
  set role service_role;
$sql$)
from unnest((select names from racers)) as name;

select plan(35);

select results_eq(
  $$ select (select count(*) from public.billing_events where provider = 'stripe' and event_id like 'evt\_race\_%')::int,
            (select count(*) from public.subscriptions where account_id = tests.racer())::int,
            tests.racer_credits() $$,
  $$ values (0, 0, array[300, 300]) $$,
  'the racing account starts with no events, no subscriptions and 300 credits');

/*
 * Ten deliveries of one event creating a subscription
 */
select dblink_exec('holder', 'begin');
select dblink_exec('holder', $sql$
  insert into public.billing_events (provider, event_id, type, occurred_at)
  values ('stripe', 'evt_race_sub_created', 'customer.subscription.created', '2025-09-10T12:00:00Z')
$sql$);
select dblink_send_query(name, tests.apply_sql(tests.race_event(
  'evt_race_sub_created', 'customer.subscription.created', '2025-09-10T12:00:00Z',
  tests.race_subscription('sub_race_1', 'active', 3))))
from unnest((select names from racers)) as name;

select ok(tests.wait_until_waiting((select names from racers)),
  'ten deliveries of one event are under way at once, all waiting on its ledger row');

-- The holder's row goes: the racers race to record the event themselves.
select dblink_exec('holder', 'rollback');
select tests.collect('same event', (select names from racers));

select is(tests.outcomes('same event', 'applied'), 1, 'exactly one delivery applies the event');
select is(
  (select count(*)::int from tests.race_answers
   where race = 'same event'
     and tests.as_json(answer) = '{"outcome": "duplicate", "recorded_outcome": "applied", "error": null, "credits_granted": 0, "credits_taken_back": 0}'),
  9,
  'the nine others are duplicates of the applied event');
select results_eq(
  $$ select count(*)::int, bool_and(processed_at is not null), max(outcome::text), max(attempts)
     from public.billing_events where provider = 'stripe' and event_id = 'evt_race_sub_created' $$,
  $$ values (1, true, 'applied', 1) $$,
  'the ledger has one row for it: processed, applied, one attempt');
select results_eq(
  $$ select count(*)::int, max(s.status::text), max(i.quantity)
     from public.subscriptions s join public.subscription_items i on i.subscription_id = s.id
     where s.account_id = tests.racer() $$,
  $$ values (1, 'active', 3) $$,
  'one subscription with its one item exists');

/*
 * Ten deliveries of one payment
 */
select dblink_exec('holder', 'begin');
select dblink_exec('holder', $sql$
  insert into public.billing_events (provider, event_id, type, occurred_at)
  values ('stripe', 'evt_race_invoice_paid', 'invoice.paid', '2025-09-10T12:00:05Z')
$sql$);
select dblink_send_query(name, tests.apply_sql(tests.race_event(
  'evt_race_invoice_paid', 'invoice.paid', '2025-09-10T12:00:05Z',
  tests.race_payment('sub_race_1', 'in_race_1',
    jsonb_build_array(jsonb_build_object('variant_id', 'price_race_seat', 'quantity', 3, 'amount', 2100,
                                         'kind', 'period'))))))
from unnest((select names from racers)) as name;

select ok(tests.wait_until_waiting((select names from racers)),
  'ten deliveries of one payment are under way at once');

select dblink_exec('holder', 'rollback');
select tests.collect('same payment', (select names from racers));

select is(
  (select count(*)::int from tests.race_answers
   where race = 'same payment'
     and tests.as_json(answer) = '{"outcome": "applied", "error": null, "credits_granted": 21, "credits_taken_back": 0}'),
  1,
  'exactly one delivery applies it, granting 3 seats x 7 credits');
select is(tests.outcomes('same payment', 'duplicate'), 9, 'the nine others are duplicates');
select results_eq(
  $$ select count(*)::int, max(outcome::text), max(attempts)
     from public.billing_events where provider = 'stripe' and event_id = 'evt_race_invoice_paid' $$,
  $$ values (1, 'applied', 1) $$,
  'the ledger has one row for the payment');
select results_eq(
  $$ select amount, reason from public.credit_transactions where reference = 'stripe:in_race_1' $$,
  $$ values (21, 'renewal') $$,
  'the credits were granted once');
select is(tests.racer_credits(), array[321, 321], 'the balance rose by 21 and equals the ledger');

/*
 * Ten different events for one payment (items from the stored subscription)
 */
select dblink_exec('holder', 'begin');
select tests.holder_sql(
  $sql$select 1 from public.profiles where id = '00000000-0000-4000-8000-0000000bb001' for update$sql$);
select dblink_send_query(name, tests.apply_sql(tests.race_event(
  'evt_race_paid_' || name, 'invoice.payment_succeeded', '2025-09-10T12:00:06Z',
  tests.race_payment('sub_race_1', 'in_race_2', null))))
from unnest((select names from racers)) as name;

select ok(tests.wait_until_waiting((select names from racers)),
  'ten events paying one invoice are under way at once, all waiting on the profile');

select dblink_exec('holder', 'commit');
select tests.collect('one payment, ten events', (select names from racers));

select is(tests.outcomes('one payment, ten events', 'applied'), 10,
  'each event is applied: none fails on the others');
select results_eq(
  $$ select sum((tests.as_json(answer) ->> 'credits_granted')::int)::int,
            count(*) filter (where (tests.as_json(answer) ->> 'credits_granted')::int > 0)::int
     from tests.race_answers where race = 'one payment, ten events' $$,
  $$ values (21, 1) $$,
  'one of them granted the 21 credits, the others nothing');
select results_eq(
  $$ select count(*)::int, sum(amount)::int from public.credit_transactions where reference = 'stripe:in_race_2' $$,
  $$ values (1, 21) $$,
  'the ledger has one renewal row for the invoice');
select is(tests.racer_credits(), array[342, 342], 'the balance rose by 21 once and equals the ledger');
select is(
  (select count(*)::int from public.billing_events
   where provider = 'stripe' and event_id like 'evt\_race\_paid\_%' and outcome = 'applied' and processed_at is not null),
  10,
  'all ten events are recorded as applied');

/*
 * Ten redeliveries of a failed event
 */
-- The payment comes before its subscription and fails (its items are the
-- subscription's); then the subscription arrives. Both committed.
insert into tests.race_answers
select 'redelivery', 'first delivery', t.answer
from dblink('racer1', tests.apply_sql(tests.race_event(
  'evt_race_early_payment', 'subscription_payment_success', '2025-09-10T12:00:10Z',
  tests.race_payment('sub_race_4', 'in_race_4', null)))) as t (answer text);
insert into tests.race_answers
select 'redelivery', 'subscription', t.answer
from dblink('racer1', tests.apply_sql(tests.race_event(
  'evt_race_sub4_created', 'subscription_created', '2025-09-10T12:00:00Z',
  tests.race_subscription('sub_race_4', 'active', 4)))) as t (answer text);

select results_eq(
  $$ select tests.as_json(answer) ->> 'outcome', tests.as_json(answer) ->> 'error'
     from tests.race_answers where race = 'redelivery' order by racer $$,
  $$ values ('failed', 'subscription sub_race_4 is not stored yet'), ('applied', null) $$,
  'the payment failed, kept for a redelivery; its subscription then arrived');

select dblink_exec('holder', 'begin');
select tests.holder_sql($sql$
  select 1 from public.billing_events where provider = 'stripe' and event_id = 'evt_race_early_payment' for update
$sql$);
select dblink_send_query(name, tests.apply_sql(tests.race_event(
  'evt_race_early_payment', 'subscription_payment_success', '2025-09-10T12:00:10Z',
  tests.race_payment('sub_race_4', 'in_race_4', null))))
from unnest((select names from racers)) as name;

select ok(tests.wait_until_waiting((select names from racers)),
  'ten redeliveries of the failed event are under way at once, all waiting on its ledger row');

select dblink_exec('holder', 'commit');
select tests.collect('ten redeliveries', (select names from racers));

select is(
  (select count(*)::int from tests.race_answers
   where race = 'ten redeliveries'
     and tests.as_json(answer) = '{"outcome": "applied", "error": null, "credits_granted": 28, "credits_taken_back": 0}'),
  1,
  'exactly one redelivery applies it, granting 4 seats x 7 credits');
select is(tests.outcomes('ten redeliveries', 'duplicate'), 9,
  'the nine others find it applied: duplicates, not second applications');
select results_eq(
  $$ select count(*)::int, bool_and(processed_at is not null), max(outcome::text), max(error), max(attempts)
     from public.billing_events where provider = 'stripe' and event_id = 'evt_race_early_payment' $$,
  $$ values (1, true, 'applied', null::text, 2) $$,
  'its ledger row is processed and applied, the error cleared, after two attempts');
select results_eq(
  $$ select count(*)::int, sum(amount)::int from public.credit_transactions where reference = 'stripe:in_race_4' $$,
  $$ values (1, 28) $$,
  'the credits were granted once');
select is(tests.racer_credits(), array[370, 370], 'the balance rose by 28 and equals the ledger');

/*
 * Two events racing to create one subscription
 */
select dblink_exec('holder', 'begin');
select dblink_exec('holder', 'lock table public.subscriptions in share row exclusive mode');
select dblink_send_query('racer1', tests.apply_sql(tests.race_event(
  'evt_race_sub2_created', 'customer.subscription.created', '2025-09-10T12:00:00Z',
  tests.race_subscription('sub_race_2', 'trialing', 1))));
select dblink_send_query('racer2', tests.apply_sql(tests.race_event(
  'evt_race_sub2_updated', 'customer.subscription.updated', '2025-09-10T12:00:01Z',
  tests.race_subscription('sub_race_2', 'active', 2))));

select ok(tests.wait_until_waiting(array['racer1', 'racer2']),
  'the created and the updated event for a new subscription are under way at once');

select dblink_exec('holder', 'commit');
select tests.collect('two events', array['racer1', 'racer2']);

select is(
  (select tests.as_json(answer) from tests.race_answers where race = 'two events' and racer = 'racer2'),
  '{"outcome": "applied", "error": null, "credits_granted": 0, "credits_taken_back": 0}'::jsonb,
  'the newer event is applied, whichever came first');
select ok(
  (select tests.as_json(answer) ->> 'outcome' in ('applied', 'stale')
   from tests.race_answers where race = 'two events' and racer = 'racer1'),
  'the older is applied if it came first, stale if it came second: neither fails');
select results_eq(
  $$ select count(*)::int, max(s.status::text), max(s.last_event_at), max(i.quantity)
     from public.subscriptions s join public.subscription_items i on i.subscription_id = s.id
     where s.id = 'sub_race_2' $$,
  $$ values (1, 'active', '2025-09-10T12:00:01Z'::timestamptz, 2) $$,
  'one subscription row, in the newer event''s state');

/*
 * Ten events racing to create one subscription
 */
select dblink_exec('holder', 'begin');
select dblink_exec('holder', 'lock table public.subscriptions in share row exclusive mode');
-- racer n's event is (7n mod 11) s after 12:00 with as many seats: the
-- newest (10 s, past_due) is racer3's, neither the first nor the last one
-- queued, so the result does not hang on the order the racers wake in.
-- 300 more items keep each racer's transaction open a while after its
-- stale check, so a check made without the subscription's row lock would
-- let an older event overwrite a newer one here.
select dblink_send_query(name, tests.apply_sql(tests.race_event(
  'evt_race_sub3_' || name, 'customer.subscription.updated',
  '2025-09-10T12:00:00Z'::timestamptz + make_interval(secs => substr(name, 6)::int * 7 % 11),
  tests.race_subscription('sub_race_3', case when name = 'racer3' then 'past_due' else 'active' end,
                          substr(name, 6)::int * 7 % 11, 300))))
from unnest((select names from racers)) as name;

select ok(tests.wait_until_waiting((select names from racers)),
  'ten events of different times for a new subscription are under way at once');

select dblink_exec('holder', 'commit');
select tests.collect('ten events', (select names from racers));

select is(
  (select tests.as_json(answer) ->> 'outcome' from tests.race_answers where race = 'ten events' and racer = 'racer3'),
  'applied',
  'the newest event is applied');
select is(
  tests.outcomes('ten events', 'applied') + tests.outcomes('ten events', 'stale'),
  10,
  'every other one is applied or stale: none fails');
select results_eq(
  $$ select count(distinct s.id)::int, max(s.status::text), max(s.last_event_at),
            max(i.quantity) filter (where i.variant_id = 'price_race_seat'), count(i.*)::int
     from public.subscriptions s join public.subscription_items i on i.subscription_id = s.id
     where s.id = 'sub_race_3' $$,
  $$ values (1, 'past_due', '2025-09-10T12:00:10Z'::timestamptz, 10, 301) $$,
  'one subscription row, in the newest event''s state, with its 301 items');
select is(
  (select count(*)::int from public.billing_events
   where provider = 'stripe' and event_id like 'evt\_race\_sub3\_%' and processed_at is not null),
  10,
  'all ten events are recorded as processed');

/*
 * Clean-up of what the sessions committed
 */
select dblink_exec('holder', $sql$
  delete from public.billing_events where provider = 'stripe' and event_id like 'evt\_race\_%';
  delete from public.billing_credit_prices where provider = 'stripe' and price_id = 'price_race_seat';
  delete from auth.users where id = '00000000-0000-4000-8000-0000000bb001';
$sql$);
select dblink_disconnect(name) from tests.sessions;

select results_eq(
  $$ select (select count(*) from public.billing_events where provider = 'stripe' and event_id like 'evt\_race\_%')::int,
            (select count(*) from public.billing_credit_prices where price_id = 'price_race_seat')::int,
            (select count(*) from public.subscriptions where id like 'sub\_race\_%')::int,
            (select count(*) from public.credit_transactions where reference like 'stripe:in\_race\_%')::int $$,
  $$ values (0, 0, 0, 0) $$,
  'nothing the races committed is left behind');

select * from finish();
rollback;
\else
select :'skip_tap';
\endif
