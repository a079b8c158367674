-- The sign-up trigger: every new auth.users row gets a personal account with
-- the same id, named from the sign-up metadata, and nobody but the trigger
-- can run the function behind it.
begin;
create extension if not exists pgtap;
\ir _helpers.psql

select plan(16);

/*
 * A confirmed email sign-up with a name
 */
do $$ begin perform tests.create_user('ada', '{"name": "Ada Lovelace", "avatar_url": "https://example.com/ada.png"}'); end $$;

select results_eq(
  $$ select id, primary_owner_user_id, is_personal_account, slug::text
     from public.accounts where id = tests.user_id('ada') $$,
  $$ values (tests.user_id('ada'), tests.user_id('ada'), true, null::text) $$,
  'signing up creates a personal account whose id is the user''s id');
select results_eq(
  $$ select name::text, email::text, picture_url::text
     from public.accounts where id = tests.user_id('ada') $$,
  $$ values ('Ada Lovelace', 'ada@test.local', 'https://example.com/ada.png') $$,
  'the personal account takes its name, email and picture from the sign-up');
select results_eq(
  $$ select created_by, updated_by from public.accounts where id = tests.user_id('ada') $$,
  $$ values (tests.user_id('ada'), tests.user_id('ada')) $$,
  'the personal account is recorded as created by its user');
select is_empty(
  $$ select 1 from public.accounts_memberships where account_id = tests.user_id('ada') $$,
  'a personal account gets no membership rows');
select is(
  (select count(*)::int from public.accounts where primary_owner_user_id = tests.user_id('ada')),
  1,
  'signing up creates exactly one account');

select tests.authenticate_as('ada');
select results_eq(
  $$ select id from public.accounts $$,
  $$ values (tests.user_id('ada')) $$,
  'the new user can read their personal account straight away');
select tests.clear_authentication();

/*
 * Where the name comes from when there is no "name"
 */
do $$ begin perform tests.create_user('grace', '{"full_name": "Grace Hopper"}'); end $$;
select is(
  (select name::text from public.accounts where id = tests.user_id('grace')),
  'Grace Hopper',
  'full_name is used when name is missing (OAuth providers send it)');

do $$ begin perform tests.create_user('linus', '{}'); end $$;
select is(
  (select name::text from public.accounts where id = tests.user_id('linus')),
  'linus',
  'without a name in the metadata, the part of the email before the @ is used');

do $$ begin perform tests.create_user('blank', '{"name": "   "}'); end $$;
select is(
  (select name::text from public.accounts where id = tests.user_id('blank')),
  'blank',
  'a blank name in the metadata is ignored');

do $$ begin perform tests.create_user('verbose', jsonb_build_object('name', repeat('x', 300))); end $$;
select is(
  (select char_length(name) from public.accounts where id = tests.user_id('verbose')),
  255,
  'an overlong name is cut to the column''s 255 characters rather than failing the sign-up');

do $$ begin perform tests.create_user('bigavatar', jsonb_build_object('avatar_url', 'https://example.com/' || repeat('a', 1000))); end $$;
select is(
  (select picture_url::text from public.accounts where id = tests.user_id('bigavatar')),
  null,
  'an avatar URL too long to store is dropped rather than failing the sign-up');

-- Anonymous sign-ins (and phone sign-ups) have no email.
insert into auth.users (id, instance_id, aud, role, is_anonymous, created_at, updated_at)
values ('00000000-0000-4000-8000-0000000a0001', '00000000-0000-0000-0000-000000000000',
        'authenticated', 'authenticated', true, now(), now());
select results_eq(
  $$ select name::text, email::text from public.accounts where id = '00000000-0000-4000-8000-0000000a0001' $$,
  $$ values ('Personal account', null::text) $$,
  'an anonymous user without email gets a placeholder name');

/*
 * GoTrue inserts as its own role, which owns auth.users (so RLS does not
 * apply to it) but has no rights on public.accounts
 */
-- supabase_auth_admin is that role on Supabase (the shim has it too);
-- `postgres` is a member, as there. It cannot see pgTAP (on Supabase
-- pgTAP lives in `extensions`, which it has no usage on), so only the
-- insert runs as it.
select lives_ok(
  $$ select tests.run_as('supabase_auth_admin', $sql$
     insert into auth.users (id, instance_id, aud, role, email, created_at, updated_at)
       values ('00000000-0000-4000-8000-0000000a0002', '00000000-0000-0000-0000-000000000000',
               'authenticated', 'authenticated', 'gotrue@test.local', now(), now()) $sql$) $$,
  'a sign-up by a role with no rights on public.accounts still succeeds');
select isnt_empty(
  $$ select 1 from public.accounts where id = '00000000-0000-4000-8000-0000000a0002' $$,
  'and still creates the personal account');

/*
 * Nobody calls the trigger function directly
 */
select tests.authenticate_as('ada');
select throws_ok(
  $$ select kit.create_personal_account() $$,
  '42501', 'permission denied for schema kit',
  'a signed-in user cannot call the sign-up trigger function');

select tests.authenticate_as_service_role();
select throws_ok(
  $$ select kit.create_personal_account() $$,
  '42501', 'permission denied for schema kit',
  'service_role cannot call the sign-up trigger function');

select * from finish();
rollback;
