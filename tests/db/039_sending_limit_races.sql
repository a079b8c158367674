-- The daily limit under concurrency: sends racing for the last places in a
-- sender's 24-hour allowance reserve exactly as many as fit, however many
-- start together, since reserve_email counts the sender's mails only after
-- taking the lock on their profile that every reservation of theirs takes.
-- The sessions and their choreography are those of 034 (see _sessions.psql):
-- a holder locks the profile, the racers are seen waiting on it, then go.
\ir _dblink.psql
\if :can_race
begin;
create extension if not exists pgtap;
\ir _helpers.psql
\ir _sessions.psql

set local statement_timeout = '60s';

-- reserve_email as the racing user: a template (the default policy), so
-- the race is the limit's alone.
create function tests.reserve_sql(idempotency_key text)
returns text
language sql
immutable
as $$
  select format(
    $sql$select public.reserve_email(
      p_recipients => '{racer@customer.example}', p_subject => null, p_content => '{}',
      p_mail_type => 'template', p_idempotency_key => %L, p_request_hash => %L,
      p_template_id => 'welcome')::text$sql$,
    idempotency_key, 'hash:' || idempotency_key
  );
$$;

create table tests.race_answers (
  name text primary key,
  answer text
);

-- The committed fixture: a user with plenty of credits who may send 3
-- mails a day, and has sent one.
select tests.open_session('holder');
select dblink_exec('holder', $sql$
  delete from auth.users where id = '00000000-0000-4000-8000-0000000cc039';
  insert into auth.users (instance_id, id, aud, role, email, raw_user_meta_data, created_at, updated_at)
  values ('00000000-0000-0000-0000-000000000000', '00000000-0000-4000-8000-0000000cc039', 'authenticated',
          'authenticated', 'limit-racer@test.local', '{"name": "Limit Racer"}', now(), now());
  insert into public.email_sender_settings (user_id, daily_mail_limit)
  values ('00000000-0000-4000-8000-0000000cc039', 3);
$sql$);

select tests.open_session(name, $sql$
  set request.jwt.claims = '{"sub": "00000000-0000-4000-8000-0000000cc039", "role": "authenticated", "aud": "authenticated"}';
  set role authenticated;
$sql$)
from unnest(array['user1', 'user2', 'user3', 'user4', 'user5']) as name;

select plan(5);

insert into tests.race_answers
select 'first', answer from dblink('user1', tests.reserve_sql('first')) as t (answer text);
select is(tests.as_json((select answer from tests.race_answers where name = 'first')) ->> 'status', 'reserved',
  'the racer has sent one of their 3 mails of the day');

/*
 * Five sends racing for the 2 places left
 */
select dblink_exec('holder', 'begin');
select tests.holder_sql(
  $sql$select 1 from public.profiles where id = '00000000-0000-4000-8000-0000000cc039' for update$sql$);
select dblink_send_query(name, tests.reserve_sql('race-' || name))
from unnest(array['user1', 'user2', 'user3', 'user4', 'user5']) as name;

select ok(tests.wait_until_waiting(array['user1', 'user2', 'user3', 'user4', 'user5']),
  'five sends are under way at once, all waiting on the sender''s profile');

select dblink_exec('holder', 'commit');
insert into tests.race_answers
select 'race: ' || name, tests.session_answer(name)
from unnest(array['user1', 'user2', 'user3', 'user4', 'user5']) as name;

select is(
  (select count(*)::int from tests.race_answers
   where name like 'race: %' and tests.as_json(answer) ->> 'status' = 'reserved'),
  2,
  'exactly two are reserved');
select is(
  (select count(*)::int from tests.race_answers
   where name like 'race: %' and answer like '%http_429: Daily sending limit reached: at most 3 emails%'),
  3,
  'and the other three get the 429, counting the mails the others reserved');
select results_eq(
  $$ select count(*)::int, (select credits from public.profiles where id = '00000000-0000-4000-8000-0000000cc039')
     from public.user_mails where user_id = '00000000-0000-4000-8000-0000000cc039' $$,
  $$ values (3, 297) $$,
  'three mails are logged for the day, and only they were charged');

/*
 * Clean-up of what the sessions committed
 */
select dblink_exec('holder', $sql$delete from auth.users where id = '00000000-0000-4000-8000-0000000cc039'$sql$);
select dblink_disconnect(name) from tests.sessions;

select * from finish();
rollback;
\else
select :'skip_tap';
\endif
