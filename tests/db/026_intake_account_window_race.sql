-- The account's rate-limit window under concurrency: tickets racing for
-- its last slot take it once, and the others are answered retry_after
-- with nothing written. A session cannot race itself, so more sessions are
-- opened with dblink, each running intake_submit in its own transaction as
-- PostgREST would.
--
-- To make the racers really meet, a 'holder' session locks the account's
-- counter row, the racers are sent their submissions and seen waiting on
-- that lock, and only then does the holder commit and let them go.
--
-- What the sessions write is committed, so the fixtures are committed too
-- and removed at the end (deleting the user cascades to the account, its
-- intake and tickets; the counters are deleted by bucket). They have fixed
-- ids and are removed first as well, in case an earlier run stopped
-- half-way. The window is a day long, so the race cannot straddle two.
\ir _dblink.psql
\if :can_race
begin;
create extension if not exists pgtap;
\ir _helpers.psql
\ir _sessions.psql

set local statement_timeout = '60s';

-- intake_submit on the racing intake, with this captcha token.
create function tests.submit_sql(captcha_token text)
returns text
language sql
immutable
as $$
  select format(
    $sql$select public.intake_submit(
      p_intake_key => 'window-race', p_title => 'Racing', p_content => 'Racing',
      p_customer_email => 'racer@customer.example', p_captcha_token_hash => encode(sha256(%L), 'hex'))::text$sql$,
    captcha_token
  );
$$;

create function tests.race_rows()
returns int[]
language sql
stable
as $$
  select array[
    (select count(*)::int from public.tickets where account_id = '00000000-0000-4000-8000-0000000ac102'),
    (select count(*)::int from public.messages m join public.tickets t on t.id = m.ticket_id
     where t.account_id = '00000000-0000-4000-8000-0000000ac102'),
    (select count(*)::int from public.ticket_intake_submissions where account_id = '00000000-0000-4000-8000-0000000ac102')
  ];
$$;

create table tests.race_answers (
  name text primary key,
  answer text
);

-- Committed fixtures: a user, their team and its intake (2 tickets a day),
-- and the team's first ticket, which leaves one slot.
select tests.open_session('holder');
select dblink_exec('holder', $sql$
  delete from kit.intake_rate_counters where bucket = 'account:00000000-0000-4000-8000-0000000ac102';
  delete from auth.users where id = '00000000-0000-4000-8000-0000000ac101';
  insert into auth.users (instance_id, id, aud, role, email, raw_user_meta_data, created_at, updated_at)
  values ('00000000-0000-0000-0000-000000000000', '00000000-0000-4000-8000-0000000ac101', 'authenticated',
          'authenticated', 'window-racer@test.local', '{"name": "Window Racer"}', now(), now());
  insert into public.accounts (id, primary_owner_user_id, name, slug)
  values ('00000000-0000-4000-8000-0000000ac102', '00000000-0000-4000-8000-0000000ac101', 'Window Race', 'window-race');
  insert into public.ticket_intakes (account_id, intake_key, rate_limit_per_ip, rate_limit_per_account, rate_limit_window_seconds)
  values ('00000000-0000-4000-8000-0000000ac102', 'window-race', 100, 2, 86400);
$sql$);
select tests.holder_sql(tests.submit_sql('first'));

select tests.open_session(name, $sql$
  set request.jwt.claims = '{"role": "service_role"}';
  set role service_role;
$sql$)
from unnest(array['racer1', 'racer2', 'racer3', 'racer4']) as name;

select plan(6);

select is(tests.race_rows(), array[1, 1, 1], 'the account starts with one ticket, one slot short of its limit');

/*
 * Four tickets racing for the last slot
 */
select dblink_exec('holder', 'begin');
select tests.holder_sql(
  $sql$select 1 from kit.intake_rate_counters where bucket = 'account:00000000-0000-4000-8000-0000000ac102' for update$sql$);
select dblink_send_query(name, tests.submit_sql('token-' || name))
from unnest(array['racer1', 'racer2', 'racer3', 'racer4']) as name;

select ok(tests.wait_until_waiting(array['racer1', 'racer2', 'racer3', 'racer4']),
  'four tickets are under way at once, all waiting on the account''s window');

select dblink_exec('holder', 'commit');
insert into tests.race_answers
select name, tests.session_answer(name)
from unnest(array['racer1', 'racer2', 'racer3', 'racer4']) as name;

select is(
  (select count(*)::int from tests.race_answers where tests.as_json(answer) ->> 'created' = 'true'),
  1,
  'exactly one takes the last slot');
select is(
  (select count(*)::int from tests.race_answers where (tests.as_json(answer) ->> 'retry_after')::int > 0),
  3,
  'the other three are answered retry_after');
select is(tests.race_rows(), array[2, 2, 2],
  'the account has two tickets, its limit, and nothing of the refused ones');
select is(
  (select hits from kit.intake_rate_counters where bucket = 'account:00000000-0000-4000-8000-0000000ac102'),
  2,
  'the window holds exactly its limit');

/*
 * Clean-up of what the sessions committed
 */
select dblink_exec('holder', $sql$
  delete from kit.intake_rate_counters where bucket like '%00000000-0000-4000-8000-0000000ac102%';
  delete from auth.users where id = '00000000-0000-4000-8000-0000000ac101';
$sql$);
select dblink_disconnect(name) from tests.sessions;

select * from finish();
rollback;
\else
select :'skip_tap';
\endif
