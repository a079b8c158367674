-- The outcome of a send, as finalize_email records it: sent, refunded (the
-- provider certainly did not send; credits back once), or unknown (it may
-- have sent: credits stay taken until a reconciler settles it as sent or
-- refunded). Regression: an ambiguous outcome (timeout, 5xx) could only be
-- recorded as a refund, which handed out free sends.
begin;
create extension if not exists pgtap;
\ir _helpers.psql

do $$
begin
  perform tests.create_user('ada');
  perform tests.allow_custom_content('ada');
  perform tests.reserve_email('ada', 'k-timeout', '{x@example.com,y@example.com}');
  perform tests.reserve_email('ada', 'k-lost');
  perform tests.reserve_email('ada', 'k-confirmed');
  perform tests.reserve_email('ada', 'k-sent');
  perform tests.reserve_email('ada', 'k-refunded');
end
$$;

create table tests.answers (
  name text primary key,
  answer jsonb not null
);
grant select, insert on table tests.answers to service_role;

-- finalize_email as the service with an explicit outcome.
create function tests.finalize_as(mail_key text, outcome text, error text default null,
                                  message_id text default null)
returns jsonb
language plpgsql
as $$
declare
  answer jsonb;
  target uuid := tests.mail_id('ada', finalize_as.mail_key);
begin
  perform tests.authenticate_as_service_role();
  answer := public.finalize_email(
    p_mail_id => target,
    p_provider => 'resend',
    p_outcome => finalize_as.outcome,
    p_provider_message_id => finalize_as.message_id,
    p_error => finalize_as.error
  );
  perform tests.clear_authentication();
  return answer;
end;
$$;

create function tests.mail_state(mail_key text)
returns text
language sql
stable
as $$
  select concat_ws(' | ', m.status, m.error, m.provider_message_id, (m.sent_at is not null)::text)
  from public.user_mails m
  where m.id = tests.mail_id('ada', mail_state.mail_key);
$$;

create function tests.refunds(mail_key text)
returns integer
language sql
stable
as $$
  select count(*)::integer from public.credit_transactions t
  where t.reason = 'email_refund' and t.reference = tests.mail_id('ada', refunds.mail_key)::text;
$$;

select plan(36);

/*
 * Signature and states
 */
select has_function('public', 'finalize_email', array['uuid', 'text', 'text', 'text', 'text'],
  'finalize_email(p_mail_id, p_provider, p_outcome, p_provider_message_id, p_error) exists');
select is(
  (select count(*)::int from pg_proc where pronamespace = 'public'::regnamespace and proname = 'finalize_email'),
  1, 'finalize_email has one signature: the one that guessed a refund from an error is gone');
select is(
  (select array_to_string(proargnames, ', ') from pg_proc
   where oid = 'public.finalize_email(uuid, text, text, text, text)'::regprocedure),
  'p_mail_id, p_provider, p_outcome, p_provider_message_id, p_error',
  'its parameters are named as PostgREST callers send them');
select is_definer('public', 'finalize_email', array['uuid', 'text', 'text', 'text', 'text'],
  'finalize_email runs as its owner');
select function_privs_are('public', 'finalize_email', array['uuid', 'text', 'text', 'text', 'text'],
  'authenticated', array[]::text[], 'users cannot call finalize_email, so cannot refund themselves');
select function_privs_are('public', 'finalize_email', array['uuid', 'text', 'text', 'text', 'text'],
  'anon', array[]::text[], 'nor can anon');
select function_privs_are('public', 'finalize_email', array['uuid', 'text', 'text', 'text', 'text'],
  'service_role', array['EXECUTE'], 'service_role can');

select is(tests.credits('ada'), 294, 'ada paid 2 + 1 + 1 + 1 + 1 for five reserved mails');

/*
 * reserved -> unknown: charged, not refunded
 */
insert into tests.answers
select 'unknown', tests.finalize_as('k-timeout', 'unknown', 'no answer within 10s');

select is(
  (select answer from tests.answers where name = 'unknown'),
  jsonb_build_object('mail_id', tests.mail_id('ada', 'k-timeout'), 'status', 'unknown', 'credits_used', 2,
                     'credits_remaining', 294),
  'an ambiguous outcome is recorded as unknown, and the answer shows the credits still taken');
select is(tests.mail_state('k-timeout'), 'unknown | no answer within 10s | false',
  'the mail says why its outcome is unknown, and was not marked sent');
select is(tests.refunds('k-timeout'), 0, 'nothing is refunded for it');
select is(tests.credits('ada'), 294, 'ada is still charged');
select is(
  (select tests.finalize_as('k-timeout', 'unknown', 'asked again') ->> 'status'), 'unknown',
  'recording unknown again changes nothing');
select is(tests.mail_state('k-timeout'), 'unknown | no answer within 10s | false', 'not even the reason');
select is(
  (select tests.reserve_email('ada', 'k-timeout', '{x@example.com,y@example.com}') - 'credits_remaining'),
  jsonb_build_object('mail_id', tests.mail_id('ada', 'k-timeout'), 'status', 'unknown', 'credits_used', 2,
                     'replayed', true),
  'a retry with the same key answers unknown and charges nothing: the first attempt may have been sent');
select throws_ok(
  $$ update public.user_mails set status = 'reserved' where id = tests.mail_id('ada', 'k-timeout') $$,
  '23514', 'an unknown mail is settled as sent or refunded, never reserved again',
  'not even the owner reopens an unknown mail');
select throws_ok(
  $$ update public.user_mails set credits_used = 1 where id = tests.mail_id('ada', 'k-timeout') $$,
  '23514', 'only the outcome of a reserved or unknown mail can change',
  'what an unknown mail cost stays as charged');

/*
 * unknown -> refunded (the reconciler found it was not sent): once
 */
insert into tests.answers
select 'settled refunded', tests.finalize_as('k-timeout', 'refunded', 'confirmed not sent');
select is(
  (select answer ->> 'status' from tests.answers where name = 'settled refunded'), 'refunded',
  'an unknown mail settled as not sent is refunded');
select is(tests.refunds('k-timeout'), 1, 'once');
select is(tests.credits('ada'), 296, 'ada got her 2 credits back');
select is(
  (select tests.finalize_as('k-timeout', 'refunded', 'confirmed again') ->> 'credits_remaining')::int, 296,
  'settling it again answers the same balance');
select is(tests.refunds('k-timeout'), 1, 'and refunds nothing more');

/*
 * unknown -> sent (the reconciler found it was sent): stays paid
 */
select tests.finalize_as('k-confirmed', 'unknown', '500 application_error');
select is(
  (select tests.finalize_as('k-confirmed', 'sent', message_id => 're_late') ->> 'status'), 'sent',
  'an unknown mail confirmed as sent becomes sent');
select is(tests.mail_state('k-confirmed'), 'sent | 500 application_error | re_late | true',
  'with the provider''s id and a time, keeping why it was once in doubt');
select is(tests.refunds('k-confirmed'), 0, 'and is never refunded');
select is(
  (select tests.finalize_as('k-confirmed', 'refunded', 'too late') ->> 'status'), 'sent',
  'a sent mail cannot be refunded afterwards');

/*
 * reserved -> sent and reserved -> refunded, as before, and final
 */
select is((select tests.finalize_as('k-sent', 'sent', message_id => 're_1') ->> 'status'), 'sent',
  'a mail the provider accepted is sent');
select is((select tests.finalize_as('k-sent', 'unknown', 'late doubt') ->> 'status'), 'sent',
  'and a sent mail does not become unknown');
select is((select tests.finalize_as('k-refunded', 'refunded', '422 validation_error') ->> 'status'), 'refunded',
  'a mail the provider certainly refused is refunded');
select is((select tests.finalize_as('k-refunded', 'unknown', 'late doubt') ->> 'status'), 'refunded',
  'and a refunded mail does not become unknown, so cannot be charged again');
select is(tests.refunds('k-refunded'), 1, 'it was refunded once');

/*
 * Bad calls
 */
select throws_ok(
  $$ select tests.finalize_as('k-lost', 'failed', 'x') $$,
  'P0001', 'http_422: The outcome must be sent, refunded or unknown',
  'an outcome other than the three is refused');
select throws_ok(
  $$ select tests.finalize_as('k-lost', null, 'x') $$,
  'P0001', 'http_422: The outcome must be sent, refunded or unknown',
  'and so is none: a refund is never guessed from an error');
select is(
  (select tests.finalize_as('k-lost', 'unknown', ' ') ->> 'status'), 'unknown',
  'an unknown outcome without a reason is still recorded');
select is(tests.mail_state('k-lost'), 'unknown | no reason given | false', 'as no reason given');
select ok(
  (select bool_and(tests.credits(u.handle) = tests.ledger_sum(u.handle)) from tests.users u),
  'every balance equals its ledger after every outcome');

select * from finish();
rollback;
