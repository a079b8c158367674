-- Refunds under concurrency, through apply_billing_event in sessions of
-- their own (dblink) as PostgREST would run them for billing-webhook: a
-- refund racing the purchase it refunds, five times (whichever commits
-- first, the credits are granted once and taken back once: no free credits
-- by ordering); ten deliveries of one refund (taken back once); ten
-- different events about one refund, as Stripe sends several (taken back
-- once). As in 052, a 'holder' session takes the lock the racers need, they
-- are seen waiting on it, and only then let go. What the sessions commit is
-- deleted at the start and the end.
\ir _dblink.psql
\if :can_race
begin;
create extension if not exists pgtap;
\ir _helpers.psql
\ir _sessions.psql
\ir _billing_races.psql

set local statement_timeout = '90s';

-- A paid one-off order of two packs (10 credits) for 1000, and its refund.
create function tests.race_order(n integer)
returns jsonb
language sql
immutable
as $$
  select jsonb_build_object('kind', 'order', 'order', jsonb_build_object(
    'id', 'cs_race_' || race_order.n, 'status', 'succeeded', 'total_amount', 1000, 'currency', 'EUR',
    'items', jsonb_build_array(jsonb_build_object(
      'product_id', null, 'variant_id', 'price_race_pack', 'quantity', 2, 'price_amount', 500)),
    'payment_keys', jsonb_build_array('pi_race_' || race_order.n)));
$$;

create function tests.race_refund(id text, n integer, cumulative boolean default false)
returns jsonb
language sql
immutable
as $$
  select jsonb_build_object('kind', 'reversal', 'reversal', jsonb_build_object(
    'id', race_refund.id, 'payment_keys', jsonb_build_array('pi_race_' || race_refund.n, 'ch_race_' || race_refund.n),
    'kind', 'refund', 'amount', 1000, 'currency', 'EUR', 'status', 'effective',
    'cumulative', race_refund.cumulative, 'provider_status', 'succeeded'));
$$;

-- What the ledger holds for order n: purchases and take-backs.
create function tests.race_ledger(n integer)
returns int[]
language sql
stable
as $$
  select array[
    (select coalesce(sum(amount), 0)::int from public.credit_transactions
     where reference = 'stripe:cs_race_' || race_ledger.n and reason = 'purchase'),
    (select coalesce(sum(amount), 0)::int from public.credit_transactions
     where reference like 'stripe:cs\_race\_' || race_ledger.n || ':%')
  ];
$$;

create temporary table racers on commit drop as
select array_agg('racer' || n order by n) as names from generate_series(1, 10) as n;

-- What the sessions commit, removed before and after.
create function tests.clean_up_sql()
returns text
language sql
immutable
as $$
  select $sql$
    delete from public.billing_events where provider = 'stripe' and event_id like 'evt\_rr\_%';
    delete from public.billing_payment_keys where provider = 'stripe' and key like '%\_race\_%';
    delete from public.billing_reversals where provider = 'stripe' and id like '%\_race\_%';
    delete from public.billing_credit_prices where provider = 'stripe' and price_id = 'price_race_pack';
    delete from auth.users where id = '00000000-0000-4000-8000-0000000bb001';
  $sql$;
$$;

select tests.open_session('holder');
select dblink_exec('holder', tests.clean_up_sql() || $sql$
  insert into auth.users (instance_id, id, aud, role, email, raw_user_meta_data, created_at, updated_at)
  values ('00000000-0000-0000-0000-000000000000', '00000000-0000-4000-8000-0000000bb001', 'authenticated',
          'authenticated', 'billing-racer@test.local', '{"name": "Billing Racer"}', now(), now());
  insert into public.billing_credit_prices (provider, price_id, credits, grant_on)
  values ('stripe', 'price_race_pack', 5, 'purchase');
$sql$);

select tests.open_session(name, $sql$
  set request.jwt.claims = '{"role": "service_role"}';
  set role service_role;
$sql$)
from unnest((select names from racers)) as name;

select plan(17);

/*
 * A refund racing the purchase it refunds, five times
 */
create temporary table pair_answers (n integer, purchase jsonb, refund jsonb) on commit drop;

do $$
begin
  for n in 1..5 loop
    -- The holder creates the payment id's row and keeps it uncommitted: both
    -- racers need it, so both wait, then race once it is gone.
    perform dblink_exec('holder', 'begin');
    perform dblink_exec('holder', format(
      'insert into public.billing_payment_keys (provider, key) values (''stripe'', %L)', 'pi_race_' || n));
    perform dblink_send_query('racer1', tests.apply_sql(tests.race_event(
      'evt_rr_purchase_' || n, 'checkout.session.completed', '2025-09-10T12:00:00Z', tests.race_order(n))));
    perform dblink_send_query('racer2', tests.apply_sql(tests.race_event(
      'evt_rr_refund_' || n, 'refund.created', '2025-09-10T12:00:30Z', tests.race_refund('re_race_' || n, n))));
    if not tests.wait_until_waiting(array['racer1', 'racer2']) then
      raise exception 'round %: the racers did not both wait', n;
    end if;
    perform dblink_exec('holder', 'rollback');
    insert into pair_answers
    values (n, tests.as_json(tests.session_answer('racer1')), tests.as_json(tests.session_answer('racer2')));
  end loop;
end
$$;

select is(
  (select count(*)::int from pair_answers
   where purchase->>'outcome' = 'applied' and refund->>'outcome' = 'applied'),
  5,
  'in five races of a refund and its purchase, both events are applied every time');
select is(
  (select sum((purchase->>'credits_granted')::int)::int from pair_answers), 50,
  'each purchase grants its 10 credits once');
select is(
  (select sum((purchase->>'credits_taken_back')::int + (refund->>'credits_taken_back')::int)::int from pair_answers), 50,
  'and each is taken back once, by whichever of the two came second');
select is(
  (select array_agg(tests.race_ledger(n)) from generate_series(1, 5) n),
  array[array[10, -10], array[10, -10], array[10, -10], array[10, -10], array[10, -10]],
  'the ledger has one purchase and one take-back per order');
select is(
  (select count(*)::int from public.billing_payments
   where provider = 'stripe' and reference like 'cs\_race\_%' and credits_taken_back = 10 and amount_refunded = 1000),
  5,
  'every payment shows its refund');
select is(tests.racer_credits(), array[300, 300], 'the balance is back at 300 and equals the ledger');

/*
 * Ten deliveries of one refund
 */
select t.answer is not null as purchased
from dblink('racer1', tests.apply_sql(tests.race_event(
  'evt_rr_purchase_6', 'checkout.session.completed', '2025-09-10T12:00:00Z', tests.race_order(6)))) as t (answer text);
select dblink_exec('holder', 'begin');
select dblink_exec('holder', $sql$
  insert into public.billing_events (provider, event_id, type, occurred_at)
  values ('stripe', 'evt_rr_refund_6', 'refund.created', '2025-09-10T12:00:30Z')
$sql$);
select dblink_send_query(name, tests.apply_sql(tests.race_event(
  'evt_rr_refund_6', 'refund.created', '2025-09-10T12:00:30Z', tests.race_refund('re_race_6', 6))))
from unnest((select names from racers)) as name;

select ok(tests.wait_until_waiting((select names from racers)),
  'ten deliveries of one refund are under way at once');

select dblink_exec('holder', 'rollback');
select tests.collect('same refund', (select names from racers));

select is(tests.outcomes('same refund', 'applied'), 1, 'exactly one delivery applies the refund');
select is(tests.outcomes('same refund', 'duplicate'), 9, 'the nine others are duplicates');
select is(
  (select sum((tests.as_json(answer)->>'credits_taken_back')::int)::int from tests.race_answers where race = 'same refund'),
  10,
  'the credits are taken back once');
select is(tests.race_ledger(6), array[10, -10], 'the ledger has one take-back');

/*
 * Ten different events about one refund
 */
select t.answer is not null as purchased
from dblink('racer1', tests.apply_sql(tests.race_event(
  'evt_rr_purchase_7', 'checkout.session.completed', '2025-09-10T12:00:00Z', tests.race_order(7)))) as t (answer text);
select dblink_exec('holder', 'begin');
select tests.holder_sql($sql$
  select key from public.billing_payment_keys where provider = 'stripe' and key = 'pi_race_7' for update
$sql$);
-- Stripe reports one refund as refund.created, refund.updated,
-- charge.refund.updated and charge.refunded (the charge's running total).
select dblink_send_query(name, tests.apply_sql(tests.race_event(
  'evt_rr_about_7_' || name,
  case when substr(name, 6)::int % 2 = 0 then 'charge.refunded' else 'refund.updated' end,
  '2025-09-10T12:00:30Z',
  case when substr(name, 6)::int % 2 = 0 then tests.race_refund('total:ch_race_7', 7, true)
       else tests.race_refund('re_race_7', 7) end)))
from unnest((select names from racers)) as name;

select ok(tests.wait_until_waiting((select names from racers)),
  'ten events about one refund are under way at once, all waiting on its payment id');

select dblink_exec('holder', 'commit');
select tests.collect('one refund, ten events', (select names from racers));

select is(tests.outcomes('one refund, ten events', 'applied'), 10, 'every event is applied');
select is(
  (select sum((tests.as_json(answer)->>'credits_taken_back')::int)::int
   from tests.race_answers where race = 'one refund, ten events'),
  10,
  'the refund takes back its credits once in all');
select is(tests.race_ledger(7), array[10, -10], 'the ledger has one take-back');
select is(tests.racer_credits(), array[300, 300], 'the balance equals the ledger');

/*
 * Clean-up of what the sessions committed
 */
select dblink_exec('holder', tests.clean_up_sql());
select dblink_disconnect(name) from tests.sessions;

select results_eq(
  $$ select (select count(*) from public.billing_events where event_id like 'evt\_rr\_%')::int,
            (select count(*) from public.billing_payments where reference like 'cs\_race\_%')::int,
            (select count(*) from public.billing_reversals where id like '%\_race\_%')::int,
            (select count(*) from public.billing_payment_keys where key like '%\_race\_%')::int,
            (select count(*) from public.credit_transactions where reference like 'stripe:cs\_race\_%')::int $$,
  $$ values (0, 0, 0, 0, 0) $$,
  'nothing the races committed is left behind');

select * from finish();
rollback;
\else
select :'skip_tap';
\endif
