-- Delivery webhooks as record_email_event records them: once per
-- (provider, event id), the mail's delivery status moving to the worst
-- heard (complained > bounced > delivered/delayed), visible to the sender
-- only, a bounce refunding nothing; service_role only. Regression: nothing
-- recorded what became of a mail after the provider accepted it. Seen
-- failing with the rank comparison turned into "latest wins" (the late
-- delivery undid the bounce).
begin;
create extension if not exists pgtap;
\ir _helpers.psql

select plan(13);

do $$
begin
  perform tests.create_user('ada');
  perform tests.create_user('bob');
  perform tests.allow_custom_content('ada');
  perform tests.reserve_email('ada', 'k-1');
  perform tests.finalize_email(tests.mail_id('ada', 'k-1'));
end
$$;

create function tests.event(event_id text, type text, occurred_at timestamptz, message_id text default null,
                            permanent boolean default false)
returns jsonb
language plpgsql
as $$
declare
  answer jsonb;
begin
  perform tests.authenticate_as_service_role();
  answer := public.record_email_event('resend', event.event_id,
    coalesce(event.message_id, 'msg-' || tests.mail_id('ada', 'k-1')), event.type, event.permanent,
    'Ada@Example.com', 'reason ' || event.event_id, event.occurred_at);
  perform tests.clear_authentication();
  return answer;
end;
$$;

create function tests.delivery()
returns text
language sql
stable
as $$
  select concat_ws(' | ', m.delivery_status, m.delivery_reason,
    (select count(*) from public.email_events e where e.mail_id = m.id)::text)
  from public.user_mails m where m.id = tests.mail_id('ada', 'k-1');
$$;

select is(tests.event('e-1', 'delivered', '2026-12-01 12:00+00') - 'mail_id',
  '{"duplicate": false, "delivery_status": "delivered"}', 'a delivery is recorded');
select is(tests.event('e-1', 'delivered', '2026-12-01 12:00+00') ->> 'duplicate', 'true',
  'its redelivery is a duplicate');
select is(tests.delivery(), 'delivered | reason e-1 | 1', 'once');
select is(tests.event('e-2', 'bounced', '2026-12-01 12:01+00', permanent => true) ->> 'delivery_status', 'bounced',
  'a bounce outranks the delivery');
select is(tests.event('e-3', 'delivered', '2026-12-01 12:02+00') ->> 'delivery_status', 'bounced',
  'a later delivery (another recipient) does not undo it');
select is(tests.event('e-4', 'complained', '2026-12-01 12:03+00') ->> 'delivery_status', 'complained',
  'a complaint outranks everything');
select is(tests.delivery(), 'complained | reason e-4 | 4', 'every event kept, the worst on the mail');
select is((select recipient from public.email_events where event_id = 'e-2'), 'ada@example.com',
  'recipients are kept lower-cased');
select is(tests.credits('ada'), 299, 'a bounce refunds nothing: the provider did the work');
select is(tests.event('e-5', 'delivered', '2026-12-01 12:04+00', 'msg-not-ours') - 'duplicate',
  '{"mail_id": null, "delivery_status": null}', 'an event about a message we did not send is kept, unattached');

select tests.authenticate_as('ada');
select is((select count(*)::int from public.email_events), 4, 'the sender reads their mail''s events');
select tests.authenticate_as('bob');
select is_empty($$ select * from public.email_events $$, 'others read none');
select throws_ok($$ select public.record_email_event('resend', 'x', 'y', 'delivered', false, null, null, now()) $$,
  '42501', 'permission denied for function record_email_event', 'and nobody but the service records one');
select tests.clear_authentication();

select * from finish();
rollback;
