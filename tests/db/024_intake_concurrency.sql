-- public.intake_submit under concurrency: two Worker requests racing with
-- the same idempotency key create one ticket, and two racing with the same
-- captcha token create one ticket and one 409. A single session cannot race
-- itself, so two more sessions are opened with dblink and run the calls in
-- their own transactions, as PostgREST would.
--
-- Unlike the other files, what those sessions write is committed, so the
-- fixtures here are committed too and removed at the end (deleting the
-- test user cascades to everything else but the account's rate-limit
-- counter, which is deleted by its bucket). They use fixed ids and are
-- removed first as well, in case an earlier run stopped half-way.
\ir _dblink.psql
\if :can_race
begin;
create extension if not exists pgtap;
\ir _helpers.psql
\ir _sessions.psql

-- Sessions 'first' and 'second' (_sessions.psql) are switched to
-- service_role below, as the Worker's requests are.

-- A submission as the Worker makes it; captcha tokens and titles vary.
create function tests.submit_sql(title text, captcha_token text, idempotency_key text)
returns text
language sql
immutable
as $$
  select format(
    $sql$select public.intake_submit(
      p_intake_key => 'race-form', p_title => %L, p_content => 'Racing', p_customer_email => 'racer@customer.example',
      p_captcha_token_hash => encode(sha256(%L), 'hex'), p_idempotency_key => %L, p_request_hash => %L)::text$sql$,
    title, captcha_token, idempotency_key, case when idempotency_key is not null then 'same-request' end
  );
$$;

create function tests.race_rows()
returns int[]
language sql
stable
as $$
  select array[
    (select count(*)::int from public.tickets where account_id = '00000000-0000-4000-8000-0000000ace02'),
    (select count(*)::int from public.messages m join public.tickets t on t.id = m.ticket_id
     where t.account_id = '00000000-0000-4000-8000-0000000ace02'),
    (select count(*)::int from public.ticket_intake_submissions where account_id = '00000000-0000-4000-8000-0000000ace02')
  ];
$$;

create table tests.race_answers (
  name text primary key,
  answer text
);

select tests.open_session(name) from unnest(array['first', 'second']) as name;

-- Committed fixtures: a user (whose personal account the sign-up trigger
-- creates), their team and its intake.
select from dblink_exec('first', $sql$
  delete from kit.intake_rate_counters where bucket = 'account:00000000-0000-4000-8000-0000000ace02';
  delete from auth.users where id = '00000000-0000-4000-8000-0000000ace01';
  insert into auth.users (instance_id, id, aud, role, email, raw_user_meta_data, created_at, updated_at)
  values ('00000000-0000-0000-0000-000000000000', '00000000-0000-4000-8000-0000000ace01', 'authenticated',
          'authenticated', 'racer@test.local', '{"name": "Racer"}', now(), now());
  insert into public.accounts (id, primary_owner_user_id, name, slug)
  values ('00000000-0000-4000-8000-0000000ace02', '00000000-0000-4000-8000-0000000ace01', 'Race Team', 'race-team');
  insert into public.ticket_intakes (account_id, intake_key)
  values ('00000000-0000-4000-8000-0000000ace02', 'race-form');
$sql$);
select from dblink_exec('first', 'set role service_role');
select from dblink_exec('second', 'set role service_role');

select plan(12);

/*
 * Same idempotency key: the second request waits, then replays
 */
select from dblink_exec('first', 'begin');
insert into tests.race_answers
select 'key: first', answer from dblink('first', tests.submit_sql('Same key', 'token-a', 'race-key')) as t (answer text);
select from dblink_send_query('second', tests.submit_sql('Same key', 'token-b', 'race-key'));

select ok(tests.wait_until_waiting(array['second']),
  'a second submission with the same key waits while the first is uncommitted');

select from dblink_exec('first', 'commit');
insert into tests.race_answers values ('key: second', tests.session_answer('second'));

select is(
  (select answer::jsonb ->> 'ticket_id' from tests.race_answers where name = 'key: second'),
  (select answer::jsonb ->> 'ticket_id' from tests.race_answers where name = 'key: first'),
  'once the first commits, the second answers with the same ticket');
select is(
  (select (first.answer::jsonb -> 'created')::text || '/' || (second.answer::jsonb -> 'created')::text
   from tests.race_answers first, tests.race_answers second
   where first.name = 'key: first' and second.name = 'key: second'),
  'true/false',
  'the first answers created: true and the second created: false');
select is(tests.race_rows(), array[1, 1, 1],
  'racing requests with one key leave one ticket, one message and one submission');

/*
 * Same key, but the first request fails: the waiting one creates the ticket
 */
select from dblink_exec('first', 'begin');
insert into tests.race_answers
select 'rollback: first', answer from dblink('first', tests.submit_sql('Rolled back', 'token-c', 'rollback-key')) as t (answer text);
select from dblink_send_query('second', tests.submit_sql('Rolled back', 'token-d', 'rollback-key'));

select ok(tests.wait_until_waiting(array['second']),
  'a second submission waits on a first that will fail');

select from dblink_exec('first', 'rollback');
insert into tests.race_answers values ('rollback: second', tests.session_answer('second'));

select is(
  (select answer::jsonb -> 'created' from tests.race_answers where name = 'rollback: second'),
  'true'::jsonb,
  'when the first rolls back, the waiting one creates the ticket');
select isnt(
  (select answer::jsonb ->> 'ticket_id' from tests.race_answers where name = 'rollback: second'),
  (select answer::jsonb ->> 'ticket_id' from tests.race_answers where name = 'rollback: first'),
  'a ticket of its own, not the one rolled back');
select is(tests.race_rows(), array[2, 2, 2],
  'and only that ticket was kept');

/*
 * Same captcha token, no key: the second request fails with 409
 */
select from dblink_exec('first', 'begin');
insert into tests.race_answers
select 'captcha: first', answer from dblink('first', tests.submit_sql('Same token', 'token-e', null)) as t (answer text);
select from dblink_send_query('second', tests.submit_sql('Same token, other post', 'token-e', null));

select ok(tests.wait_until_waiting(array['second']),
  'a second submission with the same captcha token waits on the token''s unique index');

select from dblink_exec('first', 'commit');
insert into tests.race_answers values ('captcha: second', tests.session_answer('second'));

select is(
  (select answer::jsonb -> 'created' from tests.race_answers where name = 'captcha: first'),
  'true'::jsonb,
  'the first submission with the token creates its ticket');
select matches(
  (select answer from tests.race_answers where name = 'captcha: second'),
  'http_409: This captcha token was already used',
  'the second fails with the 409 for a used token, not a bare unique violation');
select is(tests.race_rows(), array[3, 3, 3],
  'and its ticket and message were rolled back with it');

/*
 * Clean-up of what the sessions committed
 */
select from dblink_exec('first', 'reset role');
select from dblink_exec('first', $sql$
  delete from kit.intake_rate_counters where bucket = 'account:00000000-0000-4000-8000-0000000ace02';
  delete from auth.users where id = '00000000-0000-4000-8000-0000000ace01';
$sql$);
select from dblink_disconnect('first');
select from dblink_disconnect('second');

select * from finish();
rollback;
\else
select :'skip_tap';
\endif
