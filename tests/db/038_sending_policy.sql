-- The operator's sending policy, enforced by reserve_email before anything
-- is charged: templates only unless raw content is allowed (for everyone or
-- one sender), and per-sender daily limits on mails and recipients over the
-- last 24 hours. Regression: any signed-up user could send arbitrary html
-- and subject from the brand's address to 50 addresses at a time, as often
-- as their credits allowed: a phishing relay.
begin;
create extension if not exists pgtap;
\ir _helpers.psql

do $$
begin
  perform tests.create_user('ada');   -- the defaults
  perform tests.create_user('bob');   -- allowed raw content
  perform tests.create_user('cleo');  -- small limits
  perform tests.create_user('dan');   -- turned off
  perform tests.create_user('eve');   -- earlier mails, inserted with their times
  perform tests.create_user('fay');   -- likewise, for the recipient window
  perform tests.allow_custom_content('bob');
  insert into public.email_sender_settings (user_id, custom_content_allowed, daily_mail_limit, daily_recipient_limit)
  values (tests.user_id('cleo'), true, 3, 5),
         (tests.user_id('dan'), true, 0, null),
         (tests.user_id('eve'), true, 2, null),
         (tests.user_id('fay'), true, 10, 3);
end
$$;

-- A template mail as the user, with or without a subject of its own.
create function tests.reserve_template(handle text, idempotency_key text, subject text default null)
returns jsonb
language plpgsql
as $$
declare
  answer jsonb;
begin
  perform tests.authenticate_as(reserve_template.handle);
  answer := public.reserve_email(
    p_recipients => '{x@example.com}',
    p_subject => reserve_template.subject,
    p_content => '{"name": "Ada"}',
    p_mail_type => 'template',
    p_idempotency_key => reserve_template.idempotency_key,
    p_request_hash => 'hash:' || reserve_template.idempotency_key,
    p_template_id => 'welcome'
  );
  perform tests.clear_authentication();
  return answer;
end;
$$;

-- A mail the user reserved `age` ago, written straight into the log (the
-- ledger is not needed to count mails).
create function tests.log_past_mail(handle text, age interval, recipients text[] default '{x@example.com}',
                                    status text default 'reserved')
returns void
language sql
as $$
  insert into public.user_mails (user_id, recipients, subject, content, mail_type, credits_used, status, error,
                                 idempotency_key, request_hash, created_at)
  values (tests.user_id(log_past_mail.handle), log_past_mail.recipients, 'Earlier', 'Body', 'custom', 1,
          log_past_mail.status, case when log_past_mail.status = 'refunded' then 'refused' end,
          gen_random_uuid()::text, 'h', now() - log_past_mail.age);
$$;

-- The exact refusal for a full day, naming when to try again: the time in
-- UTC, rounded up to the second so that retrying then is never too early.
create function tests.limit_message(mails integer, recipients integer, retry_at timestamptz)
returns text
language sql
stable
as $$
  select format('http_429: Daily sending limit reached: at most %s emails and %s recipients in 24 hours. Try again after %s',
                mails, recipients,
                to_char(date_trunc('second', retry_at + interval '999999 microseconds') at time zone 'UTC',
                        'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
$$;

create function tests.mail_count(handle text)
returns integer
language sql
stable
as $$
  select count(*)::integer from public.user_mails where user_id = tests.user_id(mail_count.handle);
$$;

select plan(28);

/*
 * Templates only, by default
 */
select throws_ok(
  $$ select tests.reserve_email('ada', 'a-custom') $$,
  'P0001', 'http_403: This service sends only its own templates: send a template_id with variables instead of subject, html and text',
  'by default a sender cannot send their own subject and body: 403');
select throws_ok(
  $$ select tests.reserve_template('ada', 'a-subject', 'Your account is locked') $$,
  'P0001', 'http_403: The subject comes from the template: leave subject out',
  'nor put their own subject on a template');
select results_eq(
  $$ select tests.credits('ada'), tests.mail_count('ada') $$,
  $$ values (300, 0) $$,
  'refused before anything is charged or logged');
select is(
  (select tests.reserve_template('ada', 'a-template') ->> 'status'), 'reserved',
  'a template with its variables goes through');
select results_eq(
  $$ select subject, mail_type, template_id, content from public.user_mails where id = tests.mail_id('ada', 'a-template') $$,
  $$ values (null::text, 'template', 'welcome', '{"name": "Ada"}') $$,
  'logged without a subject of the sender''s');

/*
 * Raw content, where the operator allows it
 */
select is((select tests.reserve_email('bob', 'b-custom') ->> 'status'), 'reserved',
  'a sender with an exception sends their own subject and body');
select is((select tests.reserve_template('bob', 'b-subject', 'Welcome, Bob') ->> 'status'), 'reserved',
  'and may give a template a subject');

update public.email_settings set custom_content_allowed = true;
select is((select tests.reserve_email('ada', 'a-custom-allowed') ->> 'status'), 'reserved',
  'when the operator allows raw content for everyone, the default sender sends theirs');
insert into public.email_sender_settings (user_id, custom_content_allowed) values (tests.user_id('ada'), false);
select throws_ok(
  $$ select tests.reserve_email('ada', 'a-custom-taken-away') $$,
  'P0001', 'http_403: This service sends only its own templates: send a template_id with variables instead of subject, html and text',
  'and an exception can take it away from one sender again');
delete from public.email_sender_settings where user_id = tests.user_id('ada');
update public.email_settings set custom_content_allowed = false;

select is(
  (select tests.reserve_email('ada', 'a-custom-allowed') ->> 'replayed'), 'true',
  'a retry of a mail reserved while allowed is still answered once the policy changes');

/*
 * Daily limits: cleo may send 3 mails and 5 recipients in 24 hours
 */
select tests.reserve_email('cleo', 'c-1');
select tests.reserve_email('cleo', 'c-2', '{a@example.com,b@example.com}');
select is((select tests.reserve_template('cleo', 'c-3') ->> 'status'), 'reserved',
  'templates count toward the same limits');
select throws_ok(
  $$ select tests.reserve_email('cleo', 'c-4') $$,
  'P0001', tests.limit_message(3, 5, now() + interval '24 hours'),
  'the 4th mail in 24 hours is refused: 429, saying when the oldest leaves the window');
select is(tests.credits('cleo'), 296, 'and costs nothing');
select is(
  (select tests.reserve_email('cleo', 'c-1') ->> 'replayed'), 'true',
  'a retry of a mail already reserved is not a new mail: it is answered at the limit');

select tests.finalize_email(tests.mail_id('cleo', 'c-1'), 'provider refused it');
select is((select tests.reserve_email('cleo', 'c-4') ->> 'status'), 'reserved',
  'a refunded mail was never sent, so it no longer counts');

select tests.finalize_email(tests.mail_id('cleo', 'c-2'), 'no answer in time', 'unknown');
select tests.finalize_email(tests.mail_id('cleo', 'c-3'), 'confirmed not sent', 'refunded');
select throws_ok(
  $$ select tests.reserve_email('cleo', 'c-5', '{a@example.com,b@example.com,c@example.com,d@example.com}') $$,
  'P0001', tests.limit_message(3, 5, now() + interval '24 hours'),
  'a mail whose outcome is unknown may have been sent, so its 2 recipients still count: 2 + 1 + 4 > 5');
select is((select tests.reserve_email('cleo', 'c-5', '{a@example.com,b@example.com}') ->> 'status'), 'reserved',
  'while 2 more recipients fit: 2 + 1 + 2 = 5');
select throws_ok(
  $$ select tests.reserve_email('cleo', 'c-6', array(select 'r' || n || '@example.com' from generate_series(1, 6) as n)) $$,
  'P0001', 'http_422: This email has 6 recipients; at most 5 may be sent to in 24 hours',
  'a mail with more recipients than a whole day allows is a 422: waiting would not help');

/*
 * Turned off: dan's limit is 0
 */
select throws_ok(
  $$ select tests.reserve_email('dan', 'd-1') $$,
  'P0001', 'http_403: Sending email is turned off for this account',
  'a sender whose daily limit is 0 cannot send at all: 403');
select throws_ok(
  $$ select tests.reserve_template('dan', 'd-2') $$,
  'P0001', 'http_403: Sending email is turned off for this account',
  'templates neither');

/*
 * The window is the last 24 hours
 */
select tests.log_past_mail('eve', interval '25 hours');
select tests.log_past_mail('eve', interval '30 hours');
select tests.log_past_mail('eve', interval '48 hours');
select is((select tests.reserve_email('eve', 'e-1') ->> 'status'), 'reserved',
  'mails older than 24 hours do not count');
select tests.log_past_mail('eve', interval '23 hours');
select throws_ok(
  $$ select tests.reserve_email('eve', 'e-2') $$,
  'P0001', tests.limit_message(2, 200, now() + interval '1 hour'),
  'one 23 hours old and one just now fill eve''s 2: try again when the older turns 24 hours, in 1 hour');
select tests.log_past_mail('eve', interval '2 hours', status => 'refunded');
select throws_ok(
  $$ select tests.reserve_email('eve', 'e-2') $$,
  'P0001', tests.limit_message(2, 200, now() + interval '1 hour'),
  'a refunded mail in the window changes nothing');

-- fay: 3 recipients a day; 2 went out 20 hours ago, 1 ten hours ago.
select tests.log_past_mail('fay', interval '20 hours', '{a@example.com,b@example.com}');
select tests.log_past_mail('fay', interval '10 hours', '{c@example.com}');
select throws_ok(
  $$ select tests.reserve_email('fay', 'f-1') $$,
  'P0001', tests.limit_message(10, 3, now() + interval '4 hours'),
  'for recipients, the time given is when enough of them have left the window: in 4 hours, not 14');
select throws_ok(
  $$ select tests.reserve_email('fay', 'f-2', '{a@example.com,b@example.com,c@example.com}') $$,
  'P0001', tests.limit_message(10, 3, now() + interval '14 hours'),
  'and for a mail needing all 3, when both earlier mails have');

/*
 * Limits live in the database, whoever calls
 */
select is(
  (select count(*)::int from public.user_mails where user_id = tests.user_id('cleo') and status <> 'refunded'),
  3, 'cleo has exactly her 3 mails counted, whatever was tried');
select results_eq(
  $$ select tests.credits(u.handle) = tests.ledger_sum(u.handle) from tests.users u
     where u.handle in ('ada', 'bob', 'cleo', 'dan') $$,
  $$ values (true), (true), (true), (true) $$,
  'every refusal left the balances equal to the ledger');
select ok(
  (select prosecdef from pg_proc where proname = 'reserve_email' and pronamespace = 'public'::regnamespace),
  'the checks run inside reserve_email, which users call with their own token: there is no way around them');

select * from finish();
rollback;
