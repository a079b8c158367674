-- Credits under concurrency: many sends racing for a balance that covers
-- only some of them charge exactly that many and never overdraw; two
-- retries racing with one idempotency key charge once; two finalize_email
-- calls racing on one mail refund it at most once. A session cannot race
-- itself, so more sessions are opened with dblink, each running its calls
-- in their own transactions as PostgREST would.
--
-- To make the racers really start together, a 'holder' session first locks
-- the row they all need (the sender's profile, or the mail), the racers are
-- sent their calls and seen waiting on that lock, and only then does the
-- holder commit and let them go. This session never holds a lock a racer
-- needs: it only reads, and waits for answers. Every session has a
-- statement_timeout, so a mistake ends in a failed test rather than a hang.
--
-- What the sessions write is committed, so the fixture user is committed
-- too and deleted at the end (deleting the user cascades to the profile,
-- the ledger and the mails). It has a fixed id and is deleted first as
-- well, in case an earlier run stopped half-way.
\ir _dblink.psql
\if :can_race
begin;
create extension if not exists pgtap;
\ir _helpers.psql
\ir _sessions.psql

set local statement_timeout = '60s';

-- reserve_email as the racing user, with this key and the key as hash.
create function tests.reserve_sql(idempotency_key text)
returns text
language sql
immutable
as $$
  select format(
    $sql$select public.reserve_email(
      p_recipients => '{racer@customer.example}', p_subject => 'Race', p_content => 'Racing',
      p_mail_type => 'custom', p_idempotency_key => %L, p_request_hash => %L)::text$sql$,
    idempotency_key, 'hash:' || idempotency_key
  );
$$;

create function tests.finalize_sql(mail_id uuid, error text)
returns text
language sql
immutable
as $$
  select format(
    $sql$select public.finalize_email(p_mail_id => %L, p_provider => 'resend', p_outcome => %L, p_error => %L)::text$sql$,
    mail_id, case when error is null then 'sent' else 'refunded' end, error
  );
$$;

create table tests.race_answers (
  name text primary key,
  answer text
);

-- The racing user: balance, ledger sum and mails.
create function tests.racer_state()
returns int[]
language sql
stable
as $$
  select array[
    (select credits from public.profiles where id = '00000000-0000-4000-8000-0000000cc001'),
    (select coalesce(sum(amount), 0)::int from public.credit_transactions where user_id = '00000000-0000-4000-8000-0000000cc001'),
    (select count(*)::int from public.user_mails where user_id = '00000000-0000-4000-8000-0000000cc001')
  ];
$$;

-- The holder sets up the committed fixture: a user with 3 credits.
select tests.open_session('holder');
select dblink_exec('holder', $sql$
  delete from auth.users where id = '00000000-0000-4000-8000-0000000cc001';
  insert into auth.users (instance_id, id, aud, role, email, raw_user_meta_data, created_at, updated_at)
  values ('00000000-0000-0000-0000-000000000000', '00000000-0000-4000-8000-0000000cc001', 'authenticated',
          'authenticated', 'credit-racer@test.local', '{"name": "Credit Racer"}', now(), now());
  insert into public.email_sender_settings (user_id, custom_content_allowed)
  values ('00000000-0000-4000-8000-0000000cc001', true);
$sql$);
select tests.holder_sql(
  $sql$select public.grant_credits('00000000-0000-4000-8000-0000000cc001', -297, 'manual_adjustment', 'tests:race-setup')$sql$);

-- Six sessions signed in as that user, two as the service.
select tests.open_session(name, $sql$
  set request.jwt.claims = '{"sub": "00000000-0000-4000-8000-0000000cc001", "role": "authenticated", "aud": "authenticated"}';
  set role authenticated;
$sql$)
from unnest(array['user1', 'user2', 'user3', 'user4', 'user5', 'user6']) as name;
select tests.open_session(name, $sql$
  set request.jwt.claims = '{"role": "service_role"}';
  set role service_role;
$sql$)
from unnest(array['service1', 'service2']) as name;

select plan(18);

select is(tests.racer_state(), array[3, 3, 0], 'the racing user starts with 3 credits, matching the ledger');

/*
 * Six sends racing for credits that cover three
 */
select dblink_exec('holder', 'begin');
select tests.holder_sql(
  $sql$select 1 from public.profiles where id = '00000000-0000-4000-8000-0000000cc001' for update$sql$);
select dblink_send_query(name, tests.reserve_sql('race-' || name))
from unnest(array['user1', 'user2', 'user3', 'user4', 'user5', 'user6']) as name;

select ok(tests.wait_until_waiting(array['user1', 'user2', 'user3', 'user4', 'user5', 'user6']),
  'six sends are under way at once, all waiting on the sender''s profile');

select dblink_exec('holder', 'commit');
insert into tests.race_answers
select 'six: ' || name, tests.session_answer(name)
from unnest(array['user1', 'user2', 'user3', 'user4', 'user5', 'user6']) as name;

select is(
  (select count(*)::int from tests.race_answers
   where name like 'six: %' and tests.as_json(answer) ->> 'status' = 'reserved'),
  3,
  'exactly three are reserved');
select is(
  (select count(*)::int from tests.race_answers
   where name like 'six: %' and answer like '%http_402: Not enough credits: this email costs 1, you have 0%'),
  3,
  'and the other three get the 402, seeing the balance the others left');
select is(
  (select array_agg((tests.as_json(answer) ->> 'credits_remaining')::int order by (tests.as_json(answer) ->> 'credits_remaining')::int)
   from tests.race_answers where name like 'six: %' and tests.as_json(answer) is not null),
  array[0, 1, 2],
  'each success saw the balance the one before it left');
select is(tests.racer_state(), array[0, 0, 3],
  'the balance ends at 0, never below, equals the ledger, and three mails are logged');

/*
 * Two retries racing with one idempotency key
 */
select tests.holder_sql(
  $sql$select public.grant_credits('00000000-0000-4000-8000-0000000cc001', 2, 'purchase', 'tests:race-top-up')$sql$);
select dblink_exec('holder', 'begin');
select tests.holder_sql(
  $sql$select 1 from public.profiles where id = '00000000-0000-4000-8000-0000000cc001' for update$sql$);
select dblink_send_query('user1', tests.reserve_sql('same-key'));
select dblink_send_query('user2', tests.reserve_sql('same-key'));

select ok(tests.wait_until_waiting(array['user1', 'user2']),
  'two requests with the same key are under way at once');

select dblink_exec('holder', 'commit');
insert into tests.race_answers values ('key: user1', tests.session_answer('user1'));
insert into tests.race_answers values ('key: user2', tests.session_answer('user2'));

select is(
  (select array_agg(tests.as_json(answer) ->> 'replayed' order by tests.as_json(answer) ->> 'replayed')
   from tests.race_answers where name like 'key: %'),
  array['false', 'true'],
  'one reserves the mail, the other replays it');
select is(
  (select count(distinct tests.as_json(answer) ->> 'mail_id')::int from tests.race_answers where name like 'key: %'),
  1,
  'both answer with the same mail');
select is(tests.racer_state(), array[1, 1, 4], 'which was charged once and logged once');

/*
 * Two refunds racing on one mail
 */
create temporary table same_key_mail on commit drop as
select (tests.as_json(answer) ->> 'mail_id')::uuid as id from tests.race_answers where name = 'key: user1';

select dblink_exec('holder', 'begin');
select tests.holder_sql(
  format($sql$select 1 from public.user_mails where id = %L for update$sql$, (select id from same_key_mail)));
select dblink_send_query('service1', tests.finalize_sql((select id from same_key_mail), 'provider 500'));
select dblink_send_query('service2', tests.finalize_sql((select id from same_key_mail), 'provider 500'));

select ok(tests.wait_until_waiting(array['service1', 'service2']),
  'two failure reports for one mail are under way at once');

select dblink_exec('holder', 'commit');
insert into tests.race_answers values ('refund: service1', tests.session_answer('service1'));
insert into tests.race_answers values ('refund: service2', tests.session_answer('service2'));

select is(
  (select array_agg(distinct answer) from tests.race_answers where name like 'refund: %'),
  array[jsonb_build_object('mail_id', (select id from same_key_mail), 'status', 'refunded',
                           'credits_used', 1, 'credits_remaining', 2)::text],
  'both answer refunded, with the balance after one refund');
select is(
  (select count(*)::int from public.credit_transactions
   where reason = 'email_refund' and reference = (select id from same_key_mail)::text),
  1,
  'the mail was refunded once');
select is(tests.racer_state(), array[2, 2, 4], 'and the balance, back to 2, equals the ledger');

/*
 * A success and a failure racing on one mail
 */
insert into tests.race_answers
select 'mixed: reserve', answer from dblink('user3', tests.reserve_sql('mixed')) as t (answer text);
create temporary table mixed_mail on commit drop as
select (tests.as_json(answer) ->> 'mail_id')::uuid as id from tests.race_answers where name = 'mixed: reserve';

select dblink_exec('holder', 'begin');
select tests.holder_sql(
  format($sql$select 1 from public.user_mails where id = %L for update$sql$, (select id from mixed_mail)));
select dblink_send_query('service1', tests.finalize_sql((select id from mixed_mail), null));
select dblink_send_query('service2', tests.finalize_sql((select id from mixed_mail), 'provider 500'));

select ok(tests.wait_until_waiting(array['service1', 'service2']),
  'a success and a failure report for one mail are under way at once');

select dblink_exec('holder', 'commit');
insert into tests.race_answers values ('mixed: service1', tests.session_answer('service1'));
insert into tests.race_answers values ('mixed: service2', tests.session_answer('service2'));

select is(
  (select count(distinct answer)::int from tests.race_answers where name in ('mixed: service1', 'mixed: service2')),
  1,
  'whichever came first decided: both answer the same state');
select is(
  (select count(*)::int from public.credit_transactions
   where reason = 'email_refund' and reference = (select id from mixed_mail)::text),
  (select (status = 'refunded')::int from public.user_mails where id = (select id from mixed_mail)),
  'a refund was recorded exactly when the mail ended up refunded');
select is((tests.racer_state())[1], (tests.racer_state())[2], 'and the balance equals the ledger');

/*
 * Clean-up of what the sessions committed
 */
select dblink_exec('holder', $sql$delete from auth.users where id = '00000000-0000-4000-8000-0000000cc001'$sql$);
select dblink_disconnect(name) from tests.sessions;

select * from finish();
rollback;
\else
select :'skip_tap';
\endif
