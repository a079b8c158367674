-- public.intake_begin for an address already over its limit answers from a
-- read: it never waits on the address's counter row, so a burst from one
-- address cannot queue PostgREST's pool connections behind that row
-- (issue 12, intake spam at 5,000). An address under its limit is still
-- counted under the row's lock.
--
-- Seen failing before 20261202002000: the limited call waited on the
-- holder's lock until its statement timeout ("canceling statement due to
-- statement timeout").
--
-- Two dblink sessions: 'holder' keeps the counter rows locked in an open
-- transaction, 'caller' calls intake_begin as the Worker would. What they
-- need is committed (an own account and intake, its counters), and removed
-- at the end, and first too, in case an earlier run stopped half-way.
\ir _dblink.psql
\if :can_race
begin;
create extension if not exists pgtap;
\ir _helpers.psql
\ir _sessions.psql

select plan(7);

-- The answer to a query run in a session, or its error message.
create function tests.answer_of(connection text, query text)
returns text
language plpgsql
as $$
begin
  perform dblink_send_query(connection, query);
  return tests.session_answer(connection);
end;
$$;

select tests.open_session(name, 'set statement_timeout = ''2s''') from unnest(array['holder', 'caller']) as name;

-- A user of this file's own (not dev/seed.sql's: a real project has no
-- seed) and their account, with an intake allowing 2 per address an hour;
-- 192.0.2.70 already counted 3 times (one past the limit: it is limited),
-- 192.0.2.71 once (under it). All committed.
select from dblink_exec('holder', $sql$
  delete from kit.intake_rate_counters where bucket like 'ip:00000000-0000-4000-8000-0000000ace70:%';
  delete from auth.users where id = '00000000-0000-4000-8000-0000000ace71';
  insert into auth.users (instance_id, id, aud, role, email, raw_user_meta_data, created_at, updated_at)
  values ('00000000-0000-0000-0000-000000000000', '00000000-0000-4000-8000-0000000ace71', 'authenticated',
          'authenticated', 'spam-target@test.local', '{"name": "Spam Target"}', now(), now());
  insert into public.accounts (id, primary_owner_user_id, name, slug)
  values ('00000000-0000-4000-8000-0000000ace70', '00000000-0000-4000-8000-0000000ace71', 'Spam target', 'spam-target-070');
  insert into public.ticket_intakes (account_id, intake_key, rate_limit_per_ip, rate_limit_window_seconds)
  values ('00000000-0000-4000-8000-0000000ace70', 'spam-form-070', 2, 3600);
  insert into kit.intake_rate_counters (bucket, window_start, expires_at, hits)
  select kit.intake_ip_bucket('00000000-0000-4000-8000-0000000ace70', ip), w.window_start, w.window_end, hits
  from public.ticket_intakes i, kit.intake_window(i) w, (values ('192.0.2.70', 3), ('192.0.2.71', 1)) as c (ip, hits)
  where i.intake_key = 'spam-form-070';
$sql$);

-- The holder locks both counter rows and keeps its transaction open.
select from dblink_exec('holder', 'begin');
select is(
  tests.answer_of('holder', $sql$
    select count(*)::text from (select 1 from kit.intake_rate_counters
    where bucket like 'ip:00000000-0000-4000-8000-0000000ace70:%' for update) locked
  $sql$),
  '2',
  'the holder has both counter rows locked');

select is(
  tests.answer_of('caller', $sql$
    select (public.intake_begin('spam-form-070', '192.0.2.70') -> 'retry_after' is not null)::text
  $sql$),
  'true',
  'a limited address is answered retry_after at once, without waiting on its locked counter');

select matches(
  tests.answer_of('caller', $sql$
    select (public.intake_begin('spam-form-070', '192.0.2.71') -> 'retry_after')::text
  $sql$),
  'statement timeout',
  'an address under its limit is still counted under the row''s lock (it waits for the holder)');

select from dblink_exec('holder', 'rollback');

select is(
  tests.answer_of('caller', $sql$
    select string_agg(split_part(bucket, ':', 3) || '=' || hits, ',' order by bucket)
    from kit.intake_rate_counters where bucket like 'ip:00000000-0000-4000-8000-0000000ace70:%'
  $sql$),
  '192.0.2.70=3,192.0.2.71=1',
  'the limited request added nothing; the timed-out one rolled back');

select is(
  tests.answer_of('caller', $sql$
    select coalesce((public.intake_begin('spam-form-070', '192.0.2.71') -> 'retry_after')::text, 'none')
  $sql$),
  'null',
  'unlocked, the address under its limit is counted and let through');
select is(
  tests.answer_of('caller', $sql$
    select (public.intake_begin('spam-form-070', '192.0.2.71') -> 'retry_after' is not null)::text
  $sql$),
  'true',
  'the next request is counted one past the limit, and limited');
select is(
  tests.answer_of('caller', $sql$
    select hits::text from kit.intake_rate_counters
    where bucket = kit.intake_ip_bucket('00000000-0000-4000-8000-0000000ace70', '192.0.2.71')
  $sql$),
  '3',
  'the window holds one past the limit, and the address stays limited till it ends');

select from dblink_exec('holder', $sql$
  delete from kit.intake_rate_counters where bucket like 'ip:00000000-0000-4000-8000-0000000ace70:%';
  delete from auth.users where id = '00000000-0000-4000-8000-0000000ace71';
$sql$);
select from dblink_disconnect('holder');
select from dblink_disconnect('caller');

select * from finish();
rollback;
\else
select :'skip_tap';
\endif
