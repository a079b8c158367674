-- The reconciler's exactly-once claim under overlapping runs: sessions
-- that claim stale mails at the same moment never claim one mail twice,
-- and together claim each once. The sessions and their choreography are
-- those of 034 (see _sessions.psql): a holder locks the claims table, the
-- racers are seen waiting on it, then go together. Seen failing with the
-- `for update ... skip locked` and the upsert's condition removed (both
-- racers returned the same mails).
\ir _dblink.psql
\if :can_race
begin;
create extension if not exists pgtap;
\ir _helpers.psql
\ir _sessions.psql

set local statement_timeout = '60s';

create table tests.race_answers (
  name text primary key,
  answer text
);

-- Ten stale reserved mails of a committed user.
select tests.open_session('holder');
select dblink_exec('holder', $sql$
  delete from auth.users where id = '00000000-0000-4000-8000-0000000dd061';
  insert into auth.users (instance_id, id, aud, role, email, raw_user_meta_data, created_at, updated_at)
  values ('00000000-0000-0000-0000-000000000000', '00000000-0000-4000-8000-0000000dd061', 'authenticated',
          'authenticated', 'reconcile-racer@test.local', '{"name": "Reconcile Racer"}', now(), now());
  insert into public.email_sender_settings (user_id, custom_content_allowed)
  values ('00000000-0000-4000-8000-0000000dd061', true);
  set request.jwt.claims = '{"sub": "00000000-0000-4000-8000-0000000dd061", "role": "authenticated", "aud": "authenticated"}';
  set role authenticated;
  select public.reserve_email(p_recipients => '{racer@customer.example}', p_subject => 'Stuck ' || n,
    p_content => 'Hello', p_mail_type => 'custom', p_idempotency_key => 'stuck-' || n,
    p_request_hash => 'hash-' || n)
  from generate_series(1, 10) n;
  reset role;
  reset request.jwt.claims;
  -- Aged with the table's triggers off (as its owner; one implicit
  -- transaction, so no other session sees them off).
  alter table public.user_mails disable trigger user;
  update public.user_mails set created_at = now() - interval '2 hours'
  where user_id = '00000000-0000-4000-8000-0000000dd061';
  alter table public.user_mails enable trigger user;
$sql$);

select tests.open_session(name, $sql$
  set request.jwt.claims = '{"role": "service_role"}';
  set role service_role;
$sql$)
from unnest(array['run1', 'run2', 'run3']) as name;

select plan(4);

/*
 * Three runs at once, each allowed 5 of the 10
 */
select dblink_exec('holder', 'begin');
select dblink_exec('holder', 'lock table public.email_reconcile_claims in exclusive mode');
select dblink_send_query(name, $sql$
  select public.claim_stale_emails(600, 5, 600, 'resend')::text
$sql$)
from unnest(array['run1', 'run2', 'run3']) as name;

select ok(tests.wait_until_waiting(array['run1', 'run2', 'run3']),
  'three runs are under way at once, all waiting on the claims');

select dblink_exec('holder', 'commit');
insert into tests.race_answers
select name, tests.session_answer(name)
from unnest(array['run1', 'run2', 'run3']) as name;

create view tests.claimed as
select r.name, m ->> 'mail_id' as mail_id
from tests.race_answers r, jsonb_array_elements(tests.as_json(r.answer)) m
where r.name like 'run%';

select is((select count(*)::int from tests.race_answers where tests.as_json(answer) is not null), 3,
  'every run answered');
select is(
  (select count(*)::int from tests.claimed),
  (select count(distinct mail_id)::int from tests.claimed),
  'no mail was claimed by two runs');
select is((select count(*)::int from tests.claimed), 10,
  'together they claimed each of the ten once (5 + 5 + 0, in some order)');

/*
 * Clean-up of what the sessions committed
 */
select dblink_exec('holder', $sql$delete from auth.users where id = '00000000-0000-4000-8000-0000000dd061'$sql$);
select dblink_disconnect(name) from tests.sessions;

select * from finish();
rollback;
\else
select :'skip_tap';
\endif
