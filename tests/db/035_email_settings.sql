-- public.email_settings (the operator's sending policy) and
-- public.email_sender_settings (its per-sender exceptions): the shipped
-- defaults are the safe ones (templates only, a daily cap), signed-in users
-- read them and nobody but service_role changes them. Walked as anon, a
-- sender, another user and service_role; then the constraints.
begin;
create extension if not exists pgtap;
\ir _helpers.psql

do $$
begin
  perform tests.create_user('ada');
  perform tests.create_user('bob');
  insert into public.email_sender_settings (user_id, daily_mail_limit, note)
  values (tests.user_id('ada'), 500, 'Newsletter customer, checked by support');
end
$$;

select plan(47);

/*
 * Structure
 */
select has_table('public', 'email_settings', 'public.email_settings exists');
select columns_are('public', 'email_settings',
  array['id', 'custom_content_allowed', 'daily_mail_limit', 'daily_recipient_limit', 'created_at', 'updated_at'],
  'public.email_settings has exactly its documented columns');
select col_is_pk('public', 'email_settings', 'id', 'the settings are one row, keyed by a constant');
select has_table('public', 'email_sender_settings', 'public.email_sender_settings exists');
select columns_are('public', 'email_sender_settings',
  array['user_id', 'custom_content_allowed', 'daily_mail_limit', 'daily_recipient_limit', 'note',
        'created_at', 'updated_at'],
  'public.email_sender_settings has exactly its documented columns');
select col_is_pk('public', 'email_sender_settings', 'user_id', 'a sender has at most one row of exceptions');
select fk_ok('public', 'email_sender_settings', 'user_id', 'public', 'profiles', 'id',
  'exceptions belong to a sender''s profile and go with it');

select column_privs_are('public', 'email_settings', 'custom_content_allowed', 'service_role',
  array['SELECT', 'UPDATE'], 'service_role may switch custom content on or off');
select column_privs_are('public', 'email_settings', 'daily_mail_limit', 'service_role',
  array['SELECT', 'UPDATE'], 'and change the daily mail limit');
select column_privs_are('public', 'email_settings', 'daily_recipient_limit', 'service_role',
  array['SELECT', 'UPDATE'], 'and the daily recipient limit');
select policies_are('public', 'email_settings', array['Email settings are viewable by signed-in users'],
  'email_settings has only its read policy');
select policies_are('public', 'email_sender_settings', array['Email sender settings are viewable by their senders'],
  'email_sender_settings has only its read policy');
select trigger_is('public', 'email_settings', 'set_email_settings_timestamps', 'kit', 'set_timestamps',
  'the settings keep updated_at current');
select trigger_is('public', 'email_sender_settings', 'set_email_sender_settings_timestamps', 'kit',
  'set_timestamps', 'exceptions keep updated_at current');

/*
 * The shipped defaults
 */
select results_eq(
  $$ select id, custom_content_allowed, daily_mail_limit, daily_recipient_limit from public.email_settings $$,
  $$ values (true, false, 100, 200) $$,
  'one row: templates only (no raw subject, html or text), at most 100 emails and 200 recipients per sender in 24 hours');

/*
 * anon
 */
select tests.authenticate_as_anon();

select tests.denied($$ select * from public.email_settings $$,
  'email_settings', 'anon cannot read the policy');
select tests.denied($$ update public.email_settings set custom_content_allowed = true $$,
  'email_settings', 'anon cannot change it');
select tests.denied($$ select * from public.email_sender_settings $$,
  'email_sender_settings', 'anon cannot read exceptions');
select tests.denied(
  $$ insert into public.email_sender_settings (user_id, custom_content_allowed) values (tests.user_id('ada'), true) $$,
  'email_sender_settings', 'anon cannot grant exceptions');

/*
 * The sender with an exception (ada)
 */
select tests.authenticate_as('ada');

select results_eq(
  $$ select custom_content_allowed, daily_mail_limit, daily_recipient_limit from public.email_settings $$,
  $$ values (false, 100, 200) $$,
  'a signed-in user reads the policy, to show it');
select results_eq(
  $$ select user_id, custom_content_allowed, daily_mail_limit, daily_recipient_limit, note
     from public.email_sender_settings $$,
  $$ values (tests.user_id('ada'), null::boolean, 500, null::integer, 'Newsletter customer, checked by support') $$,
  'and their own exceptions (null: the default applies)');
select tests.denied($$ update public.email_settings set custom_content_allowed = true $$,
  'email_settings', 'a user cannot open raw content for everyone');
select tests.denied($$ update public.email_settings set daily_mail_limit = 100000 $$,
  'email_settings', 'nor lift the daily limit');
select tests.denied(
  $$ update public.email_sender_settings set custom_content_allowed = true where user_id = tests.user_id('ada') $$,
  'email_sender_settings', 'a user cannot grant themselves raw content');
select tests.denied(
  $$ insert into public.email_sender_settings (user_id, daily_recipient_limit) values (tests.user_id('ada'), 100000) $$,
  'email_sender_settings', 'nor a higher limit');
select tests.denied(
  $$ delete from public.email_sender_settings where user_id = tests.user_id('ada') $$,
  'email_sender_settings', 'nor drop their own exceptions');
select tests.denied($$ insert into public.email_settings (id) values (false) $$,
  'email_settings', 'nor add a second policy');

/*
 * Another user (bob)
 */
select tests.authenticate_as('bob');

select is_empty($$ select 1 from public.email_sender_settings $$,
  'another user sees nobody else''s exceptions');
select tests.denied(
  $$ insert into public.email_sender_settings (user_id, custom_content_allowed) values (tests.user_id('bob'), true) $$,
  'email_sender_settings', 'and cannot give themselves one');

/*
 * service_role
 */
select tests.authenticate_as_service_role();

select lives_ok(
  $$ insert into public.email_sender_settings (user_id, custom_content_allowed, daily_recipient_limit)
     values (tests.user_id('bob'), true, 1000) $$,
  'service_role grants a sender an exception');
select results_eq(
  $$ select user_id from public.email_sender_settings where user_id in (select id from tests.users)
     order by note nulls first $$,
  $$ values (tests.user_id('bob')), (tests.user_id('ada')) $$,
  'and reads every sender''s');
select lives_ok(
  $$ update public.email_settings set daily_recipient_limit = 300 $$,
  'service_role changes the policy');
select is((select daily_recipient_limit from public.email_settings), 300, 'and the change holds');
select tests.denied($$ insert into public.email_settings (id) values (false) $$,
  'email_settings', 'service_role cannot add a second policy row');
select tests.denied($$ delete from public.email_settings $$,
  'email_settings', 'nor delete the policy, which would leave reserve_email without one');
select tests.denied($$ update public.email_settings set id = false $$,
  'email_settings', 'nor re-key it');
select lives_ok(
  $$ delete from public.email_sender_settings where user_id = tests.user_id('bob') $$,
  'service_role removes an exception');

/*
 * Constraints, as the table's owner
 */
select tests.clear_authentication();

select throws_ok($$ insert into public.email_settings (id) values (false) $$,
  '23514', 'new row for relation "email_settings" violates check constraint "email_settings_one_row"',
  'there is only ever one policy row');
select throws_ok($$ insert into public.email_settings (id) values (true) $$,
  '23505', null, 'and no second one with the same key');
select throws_ok($$ update public.email_settings set daily_mail_limit = -1 $$,
  '23514', 'new row for relation "email_settings" violates check constraint "email_settings_daily_mail_limit_not_negative"',
  'a limit is never negative');
select throws_ok($$ update public.email_settings set daily_recipient_limit = -1 $$,
  '23514', 'new row for relation "email_settings" violates check constraint "email_settings_daily_recipient_limit_not_negative"',
  'neither is the recipient limit');
select lives_ok($$ update public.email_settings set daily_mail_limit = 0 $$,
  '0 is a limit: it stops every sender without an exception');
select throws_ok($$ update public.email_settings set custom_content_allowed = null $$,
  '23502', null, 'the policy has no unset values');
select throws_ok(
  $$ update public.email_sender_settings set daily_recipient_limit = -5 where user_id = tests.user_id('ada') $$,
  '23514', 'new row for relation "email_sender_settings" violates check constraint "email_sender_settings_daily_recipient_limit_not_negative"',
  'an exception''s limit is never negative');
select throws_ok(
  $$ update public.email_sender_settings set note = repeat('x', 501) where user_id = tests.user_id('ada') $$,
  '23514', 'new row for relation "email_sender_settings" violates check constraint "email_sender_settings_note_length"',
  'a note is at most 500 characters');
select lives_ok(
  $$ delete from auth.users where id = tests.user_id('ada') $$,
  'deleting a user');
select is_empty($$ select 1 from public.email_sender_settings where user_id in (select id from tests.users) $$,
  'takes their exceptions with them');

select * from finish();
rollback;
