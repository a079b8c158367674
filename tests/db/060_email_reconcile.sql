-- The email reconciler's claim and hand-off (claim_stale_emails,
-- hold_email_for_operator): only stale reserved/unknown mails of the
-- provider asked for, each claimed once until the retry interval passes,
-- never one held for an operator; service_role only. Regression: nothing
-- ever took up a mail left reserved, which stayed so (409 to its key,
-- its credits neither confirmed nor returned). Seen failing with the
-- claim's `operator_reason is null` condition removed (the held mail was
-- claimed again) and with the age check dropped (the fresh mail claimed).
begin;
create extension if not exists pgtap;
\ir _helpers.psql

select plan(16);

do $$
begin
  perform tests.create_user('ada');
  perform tests.allow_custom_content('ada');
  perform tests.reserve_email('ada', 'k-old-1');
  perform tests.reserve_email('ada', 'k-old-2', '{x@example.com,y@example.com}');
  perform tests.reserve_email('ada', 'k-new');
  perform tests.reserve_email('ada', 'k-sent');
  perform tests.reserve_email('ada', 'k-postmark');
  perform tests.finalize_email(tests.mail_id('ada', 'k-sent'));
  perform tests.authenticate_as_service_role();
  perform public.finalize_email(tests.mail_id('ada', 'k-postmark'), 'postmark', 'unknown', null, '500');
  perform tests.clear_authentication();
end
$$;

-- Age every mail but k-new past the reconciler's age (kit.set_timestamps
-- keeps created_at, so the table's triggers are off for this one update:
-- as its owner, not with session_replication_role, which only a superuser
-- may set, here as on Supabase).
alter table public.user_mails disable trigger user;
update public.user_mails set created_at = now() - interval '2 hours'
where user_id = tests.user_id('ada') and idempotency_key <> 'k-new';
alter table public.user_mails enable trigger user;

create function tests.claim(provider text default 'resend')
returns jsonb
language plpgsql
as $$
declare
  answer jsonb;
begin
  perform tests.authenticate_as_service_role();
  answer := public.claim_stale_emails(600, 10, 600, claim.provider);
  perform tests.clear_authentication();
  return answer;
end;
$$;

create function tests.keys(claimed jsonb)
returns text[]
language sql
immutable
as $$
  select coalesce(array_agg(m ->> 'idempotency_key' order by m ->> 'idempotency_key'), '{}')
  from jsonb_array_elements(claimed) m;
$$;

create table tests.claims (n int primary key, answer jsonb);
insert into tests.claims values (1, tests.claim());

select is(tests.keys((select answer from tests.claims where n = 1)), '{k-old-1,k-old-2}',
  'the stale reserved mails are claimed; not the fresh one, not the sent one, not another provider''s');
select is(
  (select m - 'mail_id' - 'user_id' - 'age_secs' from jsonb_array_elements((select answer from tests.claims where n = 1)) m
   where m ->> 'idempotency_key' = 'k-old-2'),
  jsonb_build_object('status', 'reserved', 'provider', null, 'recipients', '["x@example.com", "y@example.com"]'::jsonb,
    'subject', 'Mail k-old-2', 'content', 'Hello', 'html', null, 'mail_type', 'custom', 'template_id', null,
    'idempotency_key', 'k-old-2', 'attempts', 1),
  'a claim carries what a resend needs');
select ok(
  (select bool_and((m ->> 'age_secs')::int >= 7200) from jsonb_array_elements((select answer from tests.claims where n = 1)) m),
  'with its age by the database''s clock');
select is(tests.keys(tests.claim()), '{}', 'a second run within the retry interval claims none of them');
select is(tests.keys(tests.claim('postmark')), '{k-postmark}', 'Postmark''s run claims the unknown Postmark mail');

-- The retry interval passes.
update public.email_reconcile_claims set claimed_at = now() - interval '1 hour';
select is(
  (select array_agg((m ->> 'attempts')::int) from jsonb_array_elements(tests.claim()) m),
  '{2,2}',
  'after the retry interval they are claimed again, counted');

-- Handing a mail to an operator.
select tests.authenticate_as_service_role();
select is(
  public.hold_email_for_operator(tests.mail_id('ada', 'k-old-1'), 'resend', 'past the window') ->> 'status',
  'unknown',
  'a held reserved mail becomes unknown: no mail stays reserved');
select is(
  public.hold_email_for_operator(tests.mail_id('ada', 'k-sent'), 'resend', 'whatever') ->> 'status',
  'sent',
  'a sent mail is left as it is');
select tests.clear_authentication();
select is(
  (select concat_ws(' | ', m.status, m.error, (select tests.credits('ada'))::text) from public.user_mails m
   where m.id = tests.mail_id('ada', 'k-old-1')),
  'unknown | past the window | 294',
  'still charged, the reason kept');
select is(
  (select array_agg(c.operator_reason) from public.email_reconcile_claims c
   where c.operator_reason is not null),
  '{"past the window"}',
  'only the held unknown mail is marked for an operator');
update public.email_reconcile_claims set claimed_at = now() - interval '1 hour';
select is(tests.keys(tests.claim()), '{k-old-2}', 'a held mail is never claimed again');

-- Who may.
select tests.authenticate_as('ada');
select throws_ok($$ select public.claim_stale_emails(0, 10, 0, 'resend') $$, '42501',
  'permission denied for function claim_stale_emails', 'a user cannot claim mails');
select throws_ok($$ select public.hold_email_for_operator(tests.mail_id('ada', 'k-old-2'), 'resend', 'x') $$, '42501',
  'permission denied for function hold_email_for_operator', 'nor hold one');
select throws_ok($$ select * from public.email_reconcile_claims $$, '42501',
  'permission denied for table email_reconcile_claims', 'nor read the claims');
select tests.authenticate_as_anon();
select throws_ok($$ select public.claim_stale_emails(0, 10, 0, 'resend') $$, '42501',
  'permission denied for function claim_stale_emails', 'nor can anon');
select tests.authenticate_as_service_role();
select throws_ok($$ select public.claim_stale_emails(0, 0, 0, 'resend') $$, 'P0001',
  'http_422: p_limit must be between 1 and 500', 'a batch is bounded');
select tests.clear_authentication();

select * from finish();
rollback;
