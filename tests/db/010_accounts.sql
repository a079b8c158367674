-- public.accounts: who can read, create, update and delete which accounts,
-- walked as anon, an outsider, a team member, the team owner and
-- service_role; then the constraints that keep accounts well-formed.
begin;
create extension if not exists pgtap;
\ir _helpers.psql

do $$
begin
  perform tests.create_user('owner');
  perform tests.create_user('member');
  perform tests.create_user('outsider');
  perform tests.create_team_account('owner', 'team');
  perform tests.add_member(tests.account_id('team'), 'member', 'member');
end
$$;

select plan(44);

/*
 * anon
 */
select tests.authenticate_as_anon();

select tests.denied(
  $$ select * from public.accounts $$,
  'accounts', 'anon cannot read accounts');
select tests.denied(
  $$ insert into public.accounts (primary_owner_user_id, name, slug)
     values (tests.user_id('owner'), 'Anon Team', 'anon-team') $$,
  'accounts', 'anon cannot create accounts');
select tests.denied(
  $$ update public.accounts set name = 'Defaced' $$,
  'accounts', 'anon cannot update accounts');
select tests.denied(
  $$ delete from public.accounts $$,
  'accounts', 'anon cannot delete accounts');

/*
 * outsider: signed in, member of nothing
 */
select tests.authenticate_as('outsider');

select results_eq(
  $$ select id from public.accounts $$,
  $$ values (tests.user_id('outsider')) $$,
  'an outsider sees only their own personal account');
select is_empty(
  $$ select 1 from public.accounts where id = tests.account_id('team') $$,
  'an outsider cannot see a team account they do not belong to');
select is_empty(
  $$ select 1 from public.accounts where id = tests.user_id('owner') $$,
  'an outsider cannot see another user''s personal account');
select tests.denied(
  $$ insert into public.accounts (primary_owner_user_id, name, slug)
     values (tests.user_id('outsider'), 'Own Team', 'own-team') $$,
  'accounts', 'an outsider cannot create accounts directly');
select is_empty(
  $$ update public.accounts set name = 'Hijacked' where id = tests.account_id('team') returning id $$,
  'an outsider''s update of a team account matches no rows');
select is_empty(
  $$ update public.accounts set name = 'Hijacked' where id = tests.user_id('owner') returning id $$,
  'an outsider''s update of another user''s personal account matches no rows');
select tests.denied(
  $$ delete from public.accounts where id = tests.account_id('team') $$,
  'accounts', 'an outsider cannot delete accounts');

/*
 * member: belongs to the team with the 'member' role
 */
select tests.authenticate_as('member');

select set_eq(
  $$ select id from public.accounts $$,
  $$ values (tests.user_id('member')), (tests.account_id('team')) $$,
  'a member sees their personal account and the team they belong to');
select is_empty(
  $$ select 1 from public.accounts where id = tests.user_id('owner') $$,
  'a member cannot see a teammate''s personal account');
select tests.denied(
  $$ insert into public.accounts (primary_owner_user_id, name, slug)
     values (tests.user_id('member'), 'Side Team', 'side-team') $$,
  'accounts', 'a member cannot create accounts directly');
select is_empty(
  $$ update public.accounts set name = 'Member Rename' where id = tests.account_id('team') returning id $$,
  'a member without settings.manage cannot update the team account');
select results_eq(
  $$ update public.accounts set name = 'Max M.' where id = tests.user_id('member') returning name::text $$,
  $$ values ('Max M.') $$,
  'a user can rename their own personal account');
select tests.denied(
  $$ delete from public.accounts where id = tests.user_id('member') $$,
  'accounts', 'a user cannot delete their own personal account');

/*
 * owner: primary owner of the team, with the 'owner' role
 */
select tests.authenticate_as('owner');

select set_eq(
  $$ select id from public.accounts $$,
  $$ values (tests.user_id('owner')), (tests.account_id('team')) $$,
  'an owner sees their personal account and their team');
select tests.denied(
  $$ insert into public.accounts (primary_owner_user_id, name, slug)
     values (tests.user_id('owner'), 'Second Team', 'second-team') $$,
  'accounts', 'an owner cannot create accounts directly');
select results_eq(
  $$ update public.accounts
     set name = 'Team Renamed', picture_url = 'https://example.com/logo.png', public_data = '{"motto": "we fix it"}'
     where id = tests.account_id('team')
     returning name::text, picture_url::text, public_data $$,
  $$ values ('Team Renamed', 'https://example.com/logo.png', '{"motto": "we fix it"}'::jsonb) $$,
  'an owner can update the team account''s name, picture and public data');
select results_eq(
  $$ update public.accounts set slug = 'team-renamed' where id = tests.account_id('team') returning slug::text $$,
  $$ values ('team-renamed') $$,
  'an owner can change the team account''s slug');
select tests.denied(
  $$ update public.accounts set primary_owner_user_id = tests.user_id('member') where id = tests.account_id('team') $$,
  'accounts', 'an owner cannot hand the account to someone else by updating primary_owner_user_id');
select tests.denied(
  $$ update public.accounts set is_personal_account = true where id = tests.account_id('team') $$,
  'accounts', 'an owner cannot turn a team account into a personal one');
select tests.denied(
  $$ update public.accounts set email = 'spoof@example.com' where id = tests.user_id('owner') $$,
  'accounts', 'a user cannot change the email copied from their login');
select throws_ok(
  $$ update public.accounts set slug = 'my-own' where id = tests.user_id('owner') $$,
  '23514', 'new row for relation "accounts" violates check constraint "accounts_slug_iff_team"',
  'a personal account cannot be given a slug');
select tests.denied(
  $$ delete from public.accounts where id = tests.account_id('team') $$,
  'accounts', 'an owner cannot delete the team account directly');

/*
 * service_role: trusted server code, bypasses RLS
 */
select tests.authenticate_as_service_role();

select set_eq(
  $$ select id from public.accounts
     where id in (tests.user_id('owner'), tests.user_id('member'), tests.user_id('outsider'), tests.account_id('team')) $$,
  $$ values (tests.user_id('owner')), (tests.user_id('member')), (tests.user_id('outsider')), (tests.account_id('team')) $$,
  'service_role sees every account');
select lives_ok(
  $$ insert into public.accounts (id, primary_owner_user_id, name, slug)
     values ('00000000-0000-4000-8000-00000000beef', tests.user_id('outsider'), 'Server Made', 'server-made') $$,
  'service_role can create a team account');
select results_eq(
  $$ update public.accounts set name = 'Server Renamed' where id = tests.user_id('outsider') returning name::text $$,
  $$ values ('Server Renamed') $$,
  'service_role can update any account');
select results_eq(
  $$ delete from public.accounts where id = '00000000-0000-4000-8000-00000000beef' returning slug::text $$,
  $$ values ('server-made') $$,
  'service_role can delete an account');

/*
 * What the denied and filtered writes left behind
 */
select tests.clear_authentication();

select results_eq(
  $$ select name::text, slug::text from public.accounts where id = tests.account_id('team') $$,
  $$ values ('Team Renamed', 'team-renamed') $$,
  'the team account carries only the owner''s changes');
select results_eq(
  $$ select name::text from public.accounts where id = tests.user_id('owner') $$,
  $$ values ('Owner') $$,
  'the owner''s personal account was not changed by anyone else');
select results_eq(
  $$ select updated_by from public.accounts where id = tests.account_id('team') $$,
  $$ values (tests.user_id('owner')) $$,
  'updated_by records the owner as the last writer of the team account');
select is(
  (select updated_by from public.accounts where id = tests.user_id('outsider')),
  null::uuid,
  'a service_role update that names no writer clears updated_by rather than keep the previous one');

/*
 * Constraints
 */
select throws_ok(
  $$ insert into public.accounts (id, primary_owner_user_id, name, is_personal_account)
     values (gen_random_uuid(), tests.user_id('owner'), 'Second Self', true) $$,
  '23514', 'new row for relation "accounts" violates check constraint "accounts_personal_id_is_owner"',
  'a personal account must have its user''s id');
select throws_ok(
  $$ insert into public.accounts (primary_owner_user_id, name) values (tests.user_id('owner'), 'No Slug') $$,
  '23514', 'new row for relation "accounts" violates check constraint "accounts_slug_iff_team"',
  'a team account must have a slug');
select throws_ok(
  $$ insert into public.accounts (primary_owner_user_id, name, slug) values (tests.user_id('owner'), 'Copy', 'team-renamed') $$,
  '23505', 'duplicate key value violates unique constraint "accounts_slug_key"',
  'two accounts cannot share a slug');
select throws_ok(
  $$ insert into public.accounts (primary_owner_user_id, name, slug) values (tests.user_id('owner'), 'Bad', 'Not A Slug') $$,
  '23514', 'new row for relation "accounts" violates check constraint "accounts_slug_format"',
  'a slug is lowercase letters and digits separated by single hyphens');
select throws_ok(
  $$ insert into public.accounts (primary_owner_user_id, name, slug) values (tests.user_id('owner'), '   ', 'blank') $$,
  '23514', 'new row for relation "accounts" violates check constraint "accounts_name_not_blank"',
  'an account name cannot be blank');
select throws_ok(
  $$ insert into public.accounts (primary_owner_user_id, name, slug, public_data)
     values (tests.user_id('owner'), 'Listy', 'listy', '[1, 2]') $$,
  '23514', 'new row for relation "accounts" violates check constraint "accounts_public_data_is_object"',
  'public_data must be a JSON object');

/*
 * Timestamps: inserts may carry historical values; updates cannot
 */
insert into public.accounts (id, primary_owner_user_id, name, slug, created_at, updated_at)
values ('00000000-0000-4000-8000-0000000000a1', tests.user_id('owner'), 'Old Team', 'old-team',
        '2020-01-01 00:00:00+00', '2020-01-01 00:00:00+00');

update public.accounts
set name = 'Old Team Renamed', created_at = now(), updated_at = '2021-01-01 00:00:00+00'
where id = '00000000-0000-4000-8000-0000000000a1';

select is(
  (select created_at from public.accounts where id = '00000000-0000-4000-8000-0000000000a1'),
  '2020-01-01 00:00:00+00'::timestamptz,
  'created_at cannot be rewritten by an update');
select is(
  (select updated_at from public.accounts where id = '00000000-0000-4000-8000-0000000000a1'),
  now(),
  'an update stamps updated_at with the current time, whatever the statement wrote');

/*
 * Deleting an account removes its memberships; deleting a user removes
 * the accounts they own
 */
delete from public.accounts where id = tests.account_id('team');

select is_empty(
  $$ select 1 from public.accounts_memberships where account_id = tests.account_id('team') $$,
  'deleting a team account deletes its memberships');

delete from auth.users where id = tests.user_id('member');

select is_empty(
  $$ select 1 from public.accounts where id = tests.user_id('member') $$,
  'deleting a user deletes their personal account');

select * from finish();
rollback;
