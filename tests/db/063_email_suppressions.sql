-- Suppressions: a hard bounce or a complaint (record_email_event) puts the
-- recipient on email_suppressions; reserve_email then refuses a new mail
-- to it before charging, as a field error on to[i]. Regression: a mail to
-- an address that had hard-bounced was charged and sent again. Seen
-- failing with the check in reserve_email removed (the mail was reserved
-- and charged) and with the trigger's `permanent` condition dropped (the
-- soft bounce suppressed its address).
begin;
create extension if not exists pgtap;
\ir _helpers.psql

select plan(12);

do $$
begin
  perform tests.create_user('ada');
  perform tests.create_user('bob');
  perform tests.allow_custom_content('ada');
  perform tests.reserve_email('ada', 'k-1', '{gone@example.com,soft@example.com,spam@example.com}');
  perform tests.finalize_email(tests.mail_id('ada', 'k-1'));
  perform tests.reserve_email('ada', 'k-retry', '{later@example.com}');
end
$$;

create function tests.event(event_id text, type text, recipient text, permanent boolean)
returns jsonb
language plpgsql
as $$
declare
  answer jsonb;
begin
  perform tests.authenticate_as_service_role();
  answer := public.record_email_event('resend', event.event_id, 'msg-' || tests.mail_id('ada', 'k-1'),
    event.type, event.permanent, event.recipient, 'why', now());
  perform tests.clear_authentication();
  return answer;
end;
$$;

select tests.event('b-1', 'bounced', 'Gone@Example.com', true);
select tests.event('b-2', 'bounced', 'soft@example.com', false);
select tests.event('c-1', 'complained', 'spam@example.com', false);
select tests.event('b-3', 'bounced', null, true);
select tests.event('b-4', 'bounced', 'later@example.com', true);

select results_eq(
  $$ select address, reason from public.email_suppressions order by address $$,
  $$ values ('gone@example.com', 'hard_bounce'), ('later@example.com', 'hard_bounce'), ('spam@example.com', 'complaint') $$,
  'hard bounces and complaints are suppressed, lower-cased; a soft bounce, or one without a recipient, is not');
select is(tests.event('b-1', 'bounced', 'Gone@Example.com', true) ->> 'duplicate', 'true',
  'a redelivered bounce changes nothing');

select is(tests.credits('ada'), 296, 'ada has paid for her two mails (3 + 1)');
select throws_ok(
  $$ select tests.reserve_email('ada', 'k-2', '{ok@example.com,GONE@example.com,spam@example.com}') $$,
  'P0001',
  'http_422: to[1]: this address is suppressed (it hard-bounced), so no mail is sent to it; '
    || 'to[2]: this address is suppressed (it marked our mail as spam), so no mail is sent to it',
  'a mail to suppressed addresses is refused, each as a field error on its index');
select is(tests.credits('ada'), 296, 'and nothing is charged');
select is_empty($$ select 1 from public.user_mails where idempotency_key = 'k-2' $$, 'nor logged');
select ok((tests.reserve_email('ada', 'k-3', '{soft@example.com}') ->> 'status') = 'reserved',
  'a soft-bounced address is still sent to');
select is(tests.reserve_email('ada', 'k-retry', '{later@example.com}') ->> 'replayed', 'true',
  'a retry of a mail reserved before its address was suppressed replays it');

select tests.authenticate_as('ada');
select throws_ok($$ select * from public.email_suppressions $$, '42501',
  'permission denied for table email_suppressions', 'senders cannot read the list (others'' addresses)');
select throws_ok($$ delete from public.email_suppressions $$, '42501',
  'permission denied for table email_suppressions', 'nor lift a suppression');
select tests.authenticate_as_service_role();
select is((select count(*)::int from public.email_suppressions), 3, 'the service reads it');
delete from public.email_suppressions where address = 'gone@example.com';
select tests.clear_authentication();
select ok((tests.reserve_email('ada', 'k-4', '{gone@example.com}') ->> 'status') = 'reserved',
  'once an operator lifts it, the address is sent to again');

select * from finish();
rollback;
