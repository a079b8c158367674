-- public.profiles and the sign-up trigger that creates them: every user
-- gets a profile with 300 credits and the signup grant that explains them;
-- a user reads their own profile and may change its email, never its
-- credits. Walked as anon, an outsider, the profile's user and
-- service_role; then the constraints.
begin;
create extension if not exists pgtap;
\ir _helpers.psql

do $$
begin
  perform tests.create_user('ada');
  perform tests.create_user('bob');
end
$$;

select plan(50);

/*
 * Structure
 */
select has_table('public', 'profiles', 'public.profiles exists');
select columns_are('public', 'profiles',
  array['id', 'email', 'credits', 'created_at', 'updated_at'],
  'public.profiles has exactly its documented columns');
select col_is_pk('public', 'profiles', 'id', 'profiles are keyed by id');
select fk_ok('public', 'profiles', 'id', 'auth', 'users', 'id',
  'a profile belongs to a user, with the same id');
select col_type_is('public', 'profiles', 'credits', 'integer', 'credits are an integer');
select col_not_null('public', 'profiles', 'credits', 'credits are never null');
select col_default_is('public', 'profiles', 'credits', '300', 'a profile starts with 300 credits');

select is(
  (select array_agg(a.attname::text order by a.attname)
   from pg_attribute a
   where a.attrelid = 'public.profiles'::regclass and a.attnum > 0 and not a.attisdropped
     and has_column_privilege('authenticated', a.attrelid, a.attnum, 'UPDATE')),
  array['email'],
  'authenticated may update only the email of a profile');
select is(
  (select array_agg(a.attname::text order by a.attname)
   from pg_attribute a
   where a.attrelid = 'public.profiles'::regclass and a.attnum > 0 and not a.attisdropped
     and has_column_privilege('service_role', a.attrelid, a.attnum, 'UPDATE')),
  array['email'],
  'service_role may update only the email of a profile too');

select policies_are('public', 'profiles',
  array['Profiles are viewable by their users', 'Profiles are updatable by their users'],
  'profiles has its read and update policies only');
select trigger_is('public', 'profiles', 'set_profiles_timestamps', 'kit', 'set_timestamps',
  'profiles keep updated_at current');
select trigger_is('auth', 'users', 'create_profile_after_signup', 'kit', 'create_profile',
  'inserting a user creates their profile');
select is_definer('kit', 'create_profile', array[]::text[],
  'create_profile runs as its owner, since GoTrue cannot write profiles or the ledger');

/*
 * Sign-up
 */
select results_eq(
  $$ select id, email, credits from public.profiles where id = tests.user_id('ada') $$,
  $$ values (tests.user_id('ada'), 'ada@test.local', 300) $$,
  'signing up creates a profile with the user''s id, email and 300 credits');
select results_eq(
  $$ select amount, reason, reference from public.credit_transactions where user_id = tests.user_id('ada') $$,
  $$ values (300, 'signup_grant', tests.user_id('ada')::text) $$,
  'and records the 300 credits as the signup grant, referenced by the user id');
select is(tests.ledger_sum('ada'), tests.credits('ada'),
  'so the balance equals the ledger from the start');
select is_empty(
  $$ select u.id from auth.users u
     where not exists (select 1 from public.profiles p where p.id = u.id)
        or not exists (select 1 from public.credit_transactions t
                       where t.user_id = u.id and t.reason = 'signup_grant') $$,
  'every user (the seeded ones too) has a profile and a signup grant');

-- Anonymous sign-ins (and phone sign-ups) have no email.
insert into auth.users (id, instance_id, aud, role, is_anonymous, created_at, updated_at)
values ('00000000-0000-4000-8000-0000000b0001', '00000000-0000-0000-0000-000000000000',
        'authenticated', 'authenticated', true, now(), now());
select results_eq(
  $$ select email, credits from public.profiles where id = '00000000-0000-4000-8000-0000000b0001' $$,
  $$ values (null::text, 300) $$,
  'an anonymous sign-in gets a profile without email (it cannot send until it signs up properly)');

insert into auth.users (id, instance_id, aud, role, email, created_at, updated_at)
values ('00000000-0000-4000-8000-0000000b0002', '00000000-0000-0000-0000-000000000000',
        'authenticated', 'authenticated', 'not an address', now(), now());
select results_eq(
  $$ select email, credits from public.profiles where id = '00000000-0000-4000-8000-0000000b0002' $$,
  $$ values (null::text, 300) $$,
  'an email the profile cannot hold is left out rather than failing the sign-up');

-- GoTrue inserts as its own role, with no rights on profiles or the ledger.
-- supabase_auth_admin is that role on Supabase (the shim has it too);
-- `postgres` is a member, as there. It cannot see pgTAP (on Supabase
-- pgTAP lives in `extensions`, which it has no usage on), so only the
-- insert runs as it.
select lives_ok(
  $$ select tests.run_as('supabase_auth_admin', $sql$
     insert into auth.users (id, instance_id, aud, role, email, created_at, updated_at)
       values ('00000000-0000-4000-8000-0000000b0003', '00000000-0000-0000-0000-000000000000',
               'authenticated', 'authenticated', 'gotrue-profile@test.local', now(), now()) $sql$) $$,
  'a sign-up by a role with no rights on profiles still succeeds');
select results_eq(
  $$ select p.credits, (select sum(t.amount)::int from public.credit_transactions t where t.user_id = p.id)
     from public.profiles p where p.id = '00000000-0000-4000-8000-0000000b0003' $$,
  $$ values (300, 300) $$,
  'and still creates the profile and its signup grant');

/*
 * anon
 */
select tests.authenticate_as_anon();

select tests.denied($$ select * from public.profiles $$,
  'profiles', 'anon cannot read profiles');
select tests.denied(
  $$ insert into public.profiles (id) values ('00000000-0000-4000-8000-0000000b0009') $$,
  'profiles', 'anon cannot create profiles');
select tests.denied($$ update public.profiles set email = 'x@y.example' $$,
  'profiles', 'anon cannot update profiles');
select tests.denied($$ delete from public.profiles $$,
  'profiles', 'anon cannot delete profiles');

/*
 * Another user (bob, looking at ada's profile)
 */
select tests.authenticate_as('bob');

select results_eq(
  $$ select id from public.profiles $$,
  $$ values (tests.user_id('bob')) $$,
  'a user sees their own profile and nobody else''s');
select is_empty(
  $$ update public.profiles set email = 'hijack@evil.example' where id = tests.user_id('ada') returning id $$,
  'a user cannot change someone else''s email: the row is not theirs to update');
select tests.denied(
  $$ insert into public.profiles (id) values (tests.user_id('bob')) $$,
  'profiles', 'a user cannot create a profile');
select tests.denied(
  $$ delete from public.profiles where id = tests.user_id('ada') $$,
  'profiles', 'a user cannot delete someone else''s profile');

/*
 * The profile's own user (ada)
 */
select tests.authenticate_as('ada');

select results_eq(
  $$ select id, credits from public.profiles $$,
  $$ values (tests.user_id('ada'), 300) $$,
  'a user reads their own profile and balance');
select results_eq(
  $$ update public.profiles set email = 'ada@new.example' where id = tests.user_id('ada') returning email $$,
  $$ values ('ada@new.example') $$,
  'a user may change their own contact email');
select tests.denied(
  $$ update public.profiles set credits = 1000000 where id = tests.user_id('ada') $$,
  'profiles', 'a user cannot change their own credits');
select tests.denied(
  $$ update public.profiles set credits = credits + 1, email = 'ada@sneaky.example' $$,
  'profiles', 'not even alongside a change they may make');
select tests.denied(
  $$ update public.profiles set id = tests.user_id('bob') where id = tests.user_id('ada') $$,
  'profiles', 'a user cannot move their profile to another id');
select tests.denied(
  $$ update public.profiles set created_at = now() - interval '1 year' $$,
  'profiles', 'a user cannot rewrite their profile''s timestamps');
select tests.denied(
  $$ delete from public.profiles where id = tests.user_id('ada') $$,
  'profiles', 'a user cannot delete their own profile');
select throws_ok(
  $$ update public.profiles set email = 'not an address' where id = tests.user_id('ada') $$,
  '23514', null, 'the email must look like an address');
select throws_ok(
  $$ select kit.create_profile() $$,
  '42501', 'permission denied for schema kit', 'a user cannot call the sign-up trigger function');

select tests.clear_authentication();
select results_eq(
  $$ select email, credits from public.profiles where id = tests.user_id('ada') $$,
  $$ values ('ada@new.example', 300) $$,
  'after all that, ada has her new email and still exactly 300 credits');
select is(tests.credits('bob'), 300, 'and bob''s profile is untouched');

/*
 * service_role
 */
select tests.authenticate_as_service_role();

select ok(
  (select count(*) from public.profiles) >= 2,
  'service_role reads every profile');
select results_eq(
  $$ update public.profiles set email = 'bob@support.example' where id = tests.user_id('bob') returning email $$,
  $$ values ('bob@support.example') $$,
  'service_role may correct a user''s email');
select tests.denied(
  $$ update public.profiles set credits = 5 where id = tests.user_id('bob') $$,
  'profiles', 'service_role cannot set credits directly, around the ledger');
select tests.denied(
  $$ insert into public.profiles (id) values ('00000000-0000-4000-8000-0000000b0009') $$,
  'profiles', 'service_role cannot create a profile without its signup grant');
select tests.denied(
  $$ delete from public.profiles where id = tests.user_id('bob') $$,
  'profiles', 'service_role cannot delete a profile (deleting the user does)');
select throws_ok(
  $$ select kit.create_profile() $$,
  '42501', 'permission denied for schema kit', 'service_role cannot call the sign-up trigger function');

/*
 * Constraints, as the table's owner
 */
select tests.clear_authentication();

select throws_ok(
  $$ update public.profiles set credits = -1 where id = tests.user_id('bob') $$,
  '23514', 'a credit balance cannot go below 0',
  'a balance can never go below 0, whoever writes it');
select throws_ok(
  $$ insert into public.profiles (id) values ('00000000-0000-4000-8000-0000000b0009') $$,
  '23503', null, 'a profile needs a user');

select lives_ok(
  $$ delete from auth.users where id = tests.user_id('bob') $$,
  'deleting a user succeeds, append-only ledger and all');
select is_empty(
  $$ select 1 from public.profiles where id = tests.user_id('bob')
     union all
     select 1 from public.credit_transactions where user_id = tests.user_id('bob') $$,
  'and takes their profile and ledger with them');

select * from finish();
rollback;
