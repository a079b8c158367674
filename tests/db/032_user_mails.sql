-- public.user_mails (the mail log), public.email_prices and
-- public.email_price: senders read their own mails and nobody writes one
-- through the API; signed-in users read prices and only service_role
-- changes them; the price follows recipients and size. Walked as anon,
-- another user, the sender and service_role; then the constraints and the
-- guard that freezes what was charged.
begin;
create extension if not exists pgtap;
\ir _helpers.psql

do $$
begin
  perform tests.create_user('ada');
  perform tests.create_user('bob');
  perform tests.allow_custom_content('ada');
  perform tests.allow_custom_content('bob');
  perform tests.reserve_email('ada', 'ada-1');
  perform tests.reserve_email('ada', 'ada-2', recipients => '{x@example.com,y@example.com}');
  perform tests.reserve_email('bob', 'bob-1');
  perform tests.finalize_email(tests.mail_id('ada', 'ada-1'));
  perform tests.finalize_email(tests.mail_id('bob', 'bob-1'), 'provider said no');
end
$$;

select plan(74);

/*
 * Structure: public.user_mails
 */
select has_table('public', 'user_mails', 'public.user_mails exists');
select columns_are('public', 'user_mails',
  array['id', 'user_id', 'recipients', 'subject', 'content', 'html', 'mail_type', 'template_id', 'credits_used',
        'status', 'provider', 'provider_message_id', 'idempotency_key', 'request_hash', 'error',
        'created_at', 'sent_at', 'updated_at', 'delivery_status', 'delivery_status_at', 'delivery_reason'],
  'public.user_mails has exactly its documented columns');
select col_is_pk('public', 'user_mails', 'id', 'mails are keyed by id');
select fk_ok('public', 'user_mails', 'user_id', 'public', 'profiles', 'id', 'a mail belongs to its sender''s profile');
select col_type_is('public', 'user_mails', 'recipients', 'text[]', 'every recipient is kept, as an array');
select col_is_unique('public', 'user_mails', array['user_id', 'idempotency_key'],
  'an idempotency key names one mail per sender');
select has_index('public', 'user_mails', 'ix_user_mails_user_id_created_at', array['user_id', 'created_at'],
  'a sender''s mails are indexed newest first');
select has_index('public', 'user_mails', 'ix_user_mails_recipients', array['recipients'],
  'mails are indexed by recipient');
select index_is_type('public', 'user_mails', 'ix_user_mails_recipients', 'gin',
  'the recipient index is GIN, for recipients @> ''{address}''');

select policies_are('public', 'user_mails', array['Mails are viewable by their senders'],
  'user_mails has only its read policy');
select trigger_is('public', 'user_mails', 'set_user_mails_timestamps', 'kit', 'set_timestamps',
  'mails keep updated_at current');
select trigger_is('public', 'user_mails', 'guard_user_mail_update', 'kit', 'guard_user_mail_update',
  'mail updates are guarded');

/*
 * Structure: public.email_prices and public.email_price
 */
select has_table('public', 'email_prices', 'public.email_prices exists');
select columns_are('public', 'email_prices',
  array['mail_type', 'credits_per_recipient', 'included_bytes', 'step_bytes', 'credits_per_step',
        'created_at', 'updated_at'],
  'public.email_prices has exactly its documented columns');
select col_is_pk('public', 'email_prices', 'mail_type', 'one price per mail type');
select policies_are('public', 'email_prices', array['Email prices are viewable by signed-in users'],
  'email_prices has only its read policy');
select trigger_is('public', 'email_prices', 'set_email_prices_timestamps', 'kit', 'set_timestamps',
  'prices keep updated_at current');
select results_eq(
  $$ select mail_type, credits_per_recipient, included_bytes, step_bytes, credits_per_step
     from public.email_prices order by mail_type $$,
  $$ values ('custom', 1, 102400, 102400, 1), ('template', 1, 102400, 102400, 1) $$,
  'both mail types cost 1 credit per recipient, plus 1 per started 100 KiB beyond the first');

select has_function('public', 'email_price', array['text[]', 'text', 'text', 'text'],
  'email_price(p_recipients, p_content, p_mail_type, p_html) exists');
select isnt_definer('public', 'email_price', array['text[]', 'text', 'text', 'text'],
  'email_price runs as the caller, who can read the prices');
select volatility_is('public', 'email_price', array['text[]', 'text', 'text', 'text'], 'stable',
  'email_price is stable');
select function_privs_are('public', 'email_price', array['text[]', 'text', 'text', 'text'], 'anon',
  array[]::text[], 'anon cannot call email_price');
select function_privs_are('public', 'email_price', array['text[]', 'text', 'text', 'text'], 'authenticated',
  array['EXECUTE'], 'authenticated can call email_price to show a price');

/*
 * Pricing
 */
select tests.authenticate_as('ada');

select is(public.email_price('{a@example.com}', 'Hello', 'custom'), 1,
  'a small mail to one recipient costs 1');
select is(public.email_price('{a@example.com,b@example.com,c@example.com}', 'Hello', 'template'), 3,
  'each recipient costs 1');
select is(public.email_price('{a@example.com}', repeat('x', 102400), 'custom'), 1,
  'the first 100 KiB are included');
select is(public.email_price('{a@example.com}', repeat('x', 102401), 'custom'), 2,
  'one byte more starts a step: +1');
select is(public.email_price('{a@example.com,b@example.com,c@example.com}', repeat('x', 150 * 1024), 'custom'), 6,
  'the surcharge is per recipient, since each gets a copy: 3 x (1 + 1)');
select is(public.email_price('{a@example.com}', repeat('x', 201 * 1024), 'custom'), 3,
  '201 KiB is two started steps beyond the first 100 KiB: 1 + 2');
select is(public.email_price('{a@example.com}', repeat('é', 60000), 'custom'), 2,
  'size is counted in UTF-8 bytes, not characters');
select throws_ok(
  $$ select public.email_price('{a@example.com}', 'Hello', 'newsletter') $$,
  'P0001', 'http_422: Unknown mail type: use custom or template',
  'a mail type without a price is refused');
select throws_ok(
  $$ select public.email_price('{}', 'Hello', 'custom') $$,
  'P0001', 'http_422: An email needs at least one recipient',
  'a mail without recipients has no price');

/*
 * anon
 */
select tests.authenticate_as_anon();

select tests.denied($$ select * from public.user_mails $$,
  'user_mails', 'anon cannot read mails');
select tests.denied(
  $$ insert into public.user_mails (user_id, recipients, subject, content, mail_type, credits_used, idempotency_key, request_hash)
     values (tests.user_id('ada'), '{a@example.com}', 'Hi', 'Free mail', 'custom', 1, 'anon-1', 'h') $$,
  'user_mails', 'anon cannot log mails');
select tests.denied($$ update public.user_mails set status = 'refunded' $$,
  'user_mails', 'anon cannot update mails');
select tests.denied($$ delete from public.user_mails $$,
  'user_mails', 'anon cannot delete mails');
select tests.denied($$ select * from public.email_prices $$,
  'email_prices', 'anon cannot read prices');
select tests.denied($$ update public.email_prices set credits_per_recipient = 1 $$,
  'email_prices', 'anon cannot change prices');

/*
 * Another user (bob)
 */
select tests.authenticate_as('bob');

select results_eq(
  $$ select idempotency_key, status from public.user_mails $$,
  $$ values ('bob-1', 'refunded') $$,
  'a user sees their own mails and nobody else''s');
select tests.denied(
  $$ insert into public.user_mails (user_id, recipients, subject, content, mail_type, credits_used, idempotency_key, request_hash)
     values (tests.user_id('ada'), '{a@example.com}', 'Hi', 'On ada''s bill', 'custom', 1, 'bob-for-ada', 'h') $$,
  'user_mails', 'a user cannot log a mail in someone else''s name');
select tests.denied(
  $$ update public.user_mails set status = 'refunded' where user_id = tests.user_id('ada') $$,
  'user_mails', 'a user cannot touch someone else''s mails');
select tests.denied(
  $$ delete from public.user_mails where user_id = tests.user_id('ada') $$,
  'user_mails', 'a user cannot delete someone else''s mails');

/*
 * The sender (ada)
 */
select tests.authenticate_as('ada');

select results_eq(
  $$ select idempotency_key, status, credits_used, recipients from public.user_mails order by idempotency_key $$,
  $$ values ('ada-1', 'sent', 1, '{ada@example.com}'::text[]),
            ('ada-2', 'reserved', 2, '{x@example.com,y@example.com}'::text[]) $$,
  'a sender reads their own mails, with status, price and recipients');
select results_eq(
  $$ select idempotency_key from public.user_mails where recipients @> '{y@example.com}' $$,
  $$ values ('ada-2') $$,
  'and can find the mails sent to an address');
select tests.denied(
  $$ insert into public.user_mails (user_id, recipients, subject, content, mail_type, credits_used, idempotency_key, request_hash)
     values (tests.user_id('ada'), '{a@example.com}', 'Hi', 'Free mail', 'custom', 1, 'free-1', 'h') $$,
  'user_mails', 'a sender cannot log a mail without paying for it');
select tests.denied(
  $$ update public.user_mails set status = 'refunded', error = 'I changed my mind' where idempotency_key = 'ada-1' $$,
  'user_mails', 'a sender cannot mark their sent mail refunded');
select tests.denied(
  $$ update public.user_mails set credits_used = 0 $$,
  'user_mails', 'a sender cannot lower what a mail cost');
select tests.denied(
  $$ delete from public.user_mails where idempotency_key = 'ada-2' $$,
  'user_mails', 'a sender cannot delete their mails');
select results_eq(
  $$ select count(*)::int from public.email_prices $$,
  $$ values (2) $$,
  'a signed-in user reads the prices');
select tests.denied(
  $$ update public.email_prices set credits_per_recipient = 1 $$,
  'email_prices', 'a user cannot change the prices');
select tests.denied(
  $$ insert into public.email_prices (mail_type, credits_per_recipient) values ('custom', 1) $$,
  'email_prices', 'a user cannot add a price');
select tests.denied(
  $$ delete from public.email_prices $$,
  'email_prices', 'a user cannot delete the prices');

/*
 * service_role
 */
select tests.authenticate_as_service_role();

select results_eq(
  $$ select count(*)::int from public.user_mails where user_id in (tests.user_id('ada'), tests.user_id('bob')) $$,
  $$ values (3) $$,
  'service_role reads every user''s mails');
select tests.denied(
  $$ insert into public.user_mails (user_id, recipients, subject, content, mail_type, credits_used, idempotency_key, request_hash)
     values (tests.user_id('ada'), '{a@example.com}', 'Hi', 'Unpaid', 'custom', 1, 'svc-1', 'h') $$,
  'user_mails', 'service_role cannot log a mail around reserve_email');
select tests.denied(
  $$ update public.user_mails set status = 'sent' $$,
  'user_mails', 'service_role records outcomes only through finalize_email');
select tests.denied(
  $$ delete from public.user_mails $$,
  'user_mails', 'service_role cannot delete mails');
select lives_ok(
  $$ update public.email_prices set credits_per_recipient = 2 where mail_type = 'template' $$,
  'service_role may change a price');
select is(public.email_price('{a@example.com}', 'Hello', 'template'), 2,
  'and the new price applies from then on');

/*
 * Constraints, as the table's owner
 */
select tests.clear_authentication();

create function tests.log_mail(recipients text[], mail_type text default 'custom', template_id text default null,
                               subject text default 'Hi', status text default 'reserved')
returns void
language sql
as $$
  insert into public.user_mails (user_id, recipients, subject, content, mail_type, template_id, credits_used,
                                 status, idempotency_key, request_hash)
  values (tests.user_id('ada'), log_mail.recipients, log_mail.subject, 'Body', log_mail.mail_type,
          log_mail.template_id, 1, log_mail.status, gen_random_uuid()::text, 'h');
$$;

select throws_ok($$ select tests.log_mail('{}') $$,
  '23514', 'new row for relation "user_mails" violates check constraint "user_mails_recipients_format"',
  'a mail needs a recipient');
select throws_ok(
  $$ select tests.log_mail(array(select 'r' || n || '@example.com' from generate_series(1, 51) as n)) $$,
  '23514', 'new row for relation "user_mails" violates check constraint "user_mails_recipients_format"',
  'a mail has at most 50 recipients');
select lives_ok(
  $$ select tests.log_mail(array(select 'r' || n || '@example.com' from generate_series(1, 50) as n)) $$,
  '50 recipients are fine');
select throws_ok($$ select tests.log_mail('{a@example.com,not-an-address}') $$,
  '23514', 'new row for relation "user_mails" violates check constraint "user_mails_recipients_format"',
  'every recipient must look like an address');
select throws_ok($$ select tests.log_mail(array['a@example.com', '']) $$,
  '23514', 'new row for relation "user_mails" violates check constraint "user_mails_recipients_format"',
  'an empty recipient is refused');
select throws_ok($$ select tests.log_mail(array['a@example.com', null]) $$,
  '23514', 'new row for relation "user_mails" violates check constraint "user_mails_recipients_format"',
  'a null recipient is refused');
select throws_ok($$ select tests.log_mail(array['a@example.com b@example.com']) $$,
  '23514', 'new row for relation "user_mails" violates check constraint "user_mails_recipients_format"',
  'two addresses cannot hide in one element');
select throws_ok($$ select tests.log_mail('{a@example.com}', subject => E'Hi\nBcc: victim@example.com') $$,
  '23514', 'new row for relation "user_mails" violates check constraint "user_mails_subject_format"',
  'a subject is one line: no header injection');
select throws_ok($$ select tests.log_mail('{a@example.com}', 'template') $$,
  '23514', 'new row for relation "user_mails" violates check constraint "user_mails_template_id_iff_template"',
  'a template mail names its template');
select throws_ok($$ select tests.log_mail('{a@example.com}', 'custom', 'welcome') $$,
  '23514', 'new row for relation "user_mails" violates check constraint "user_mails_template_id_iff_template"',
  'a custom mail names no template');
select throws_ok($$ select tests.log_mail('{a@example.com}', status => 'failed') $$,
  '23514', 'new row for relation "user_mails" violates check constraint "user_mails_status_known"',
  'the states are reserved, sent, unknown and refunded: there is no failed-but-charged state besides unknown');
select throws_ok($$ select tests.log_mail('{a@example.com}', status => 'sent') $$,
  '23514', null,
  'a mail is not sent without a provider and a time');

/*
 * The guard: what was charged, and a finalized mail, stay as they are
 */
select throws_ok(
  $$ update public.user_mails set status = 'refunded', error = 'late refund' where id = tests.mail_id('ada', 'ada-1') $$,
  '23514', 'a sent mail cannot change',
  'not even the table''s owner turns a sent mail into a refund');
select throws_ok(
  $$ update public.user_mails set status = 'reserved', error = null where id = tests.mail_id('bob', 'bob-1') $$,
  '23514', 'a refunded mail cannot change',
  'a refunded mail cannot be reopened to be refunded again');
select throws_ok(
  $$ update public.user_mails set credits_used = 1 where id = tests.mail_id('ada', 'ada-2') $$,
  '23514', 'only the outcome of a reserved or unknown mail can change',
  'what a reserved mail cost stays as charged');
select throws_ok(
  $$ update public.user_mails set user_id = tests.user_id('bob') where id = tests.mail_id('ada', 'ada-2') $$,
  '23514', 'only the outcome of a reserved or unknown mail can change',
  'a mail cannot be moved to another sender');

select * from finish();
rollback;
