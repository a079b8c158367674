-- public.accounts_memberships: members read their team's memberships; in
-- this slice nobody but service_role writes them. Walked as anon, an
-- outsider, a member, the owner and service_role; then integrity rules.
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
  -- A second team nobody above belongs to.
  perform tests.create_user('stranger');
  perform tests.create_team_account('stranger', 'elsewhere');
end
$$;

select plan(32);

/*
 * anon
 */
select tests.authenticate_as_anon();

select tests.denied(
  $$ select * from public.accounts_memberships $$,
  'accounts_memberships', 'anon cannot read memberships');
select tests.denied(
  $$ insert into public.accounts_memberships (user_id, account_id, account_role)
     values (tests.user_id('outsider'), tests.account_id('team'), 'owner') $$,
  'accounts_memberships', 'anon cannot create memberships');
select tests.denied(
  $$ update public.accounts_memberships set account_role = 'owner' $$,
  'accounts_memberships', 'anon cannot update memberships');
select tests.denied(
  $$ delete from public.accounts_memberships $$,
  'accounts_memberships', 'anon cannot delete memberships');

/*
 * outsider
 */
select tests.authenticate_as('outsider');

select is_empty(
  $$ select * from public.accounts_memberships $$,
  'an outsider sees no memberships at all');
select tests.denied(
  $$ insert into public.accounts_memberships (user_id, account_id, account_role)
     values (tests.user_id('outsider'), tests.account_id('team'), 'member') $$,
  'accounts_memberships', 'an outsider cannot join a team by inserting a membership');
select tests.denied(
  $$ update public.accounts_memberships set user_id = tests.user_id('outsider')
     where account_id = tests.account_id('team') $$,
  'accounts_memberships', 'an outsider cannot take over a membership');
select tests.denied(
  $$ delete from public.accounts_memberships where account_id = tests.account_id('team') $$,
  'accounts_memberships', 'an outsider cannot delete a team''s memberships');

/*
 * member
 */
select tests.authenticate_as('member');

select set_eq(
  $$ select user_id, account_role::text from public.accounts_memberships $$,
  $$ values (tests.user_id('owner'), 'owner'), (tests.user_id('member'), 'member') $$,
  'a member sees every membership of their team and nothing else');
select is_empty(
  $$ select 1 from public.accounts_memberships where account_id = tests.account_id('elsewhere') $$,
  'a member cannot see the memberships of a team they do not belong to');
select tests.denied(
  $$ insert into public.accounts_memberships (user_id, account_id, account_role)
     values (tests.user_id('outsider'), tests.account_id('team'), 'member') $$,
  'accounts_memberships', 'a member cannot add people to the team');
select tests.denied(
  $$ update public.accounts_memberships set account_role = 'owner'
     where user_id = tests.user_id('member') $$,
  'accounts_memberships', 'a member cannot promote themselves');
select tests.denied(
  $$ delete from public.accounts_memberships where user_id = tests.user_id('owner') $$,
  'accounts_memberships', 'a member cannot remove the owner');

/*
 * owner
 */
select tests.authenticate_as('owner');

select set_eq(
  $$ select user_id, account_role::text from public.accounts_memberships $$,
  $$ values (tests.user_id('owner'), 'owner'), (tests.user_id('member'), 'member') $$,
  'an owner sees every membership of their team and nothing else');
select is_empty(
  $$ select 1 from public.accounts_memberships where account_id = tests.account_id('elsewhere') $$,
  'an owner cannot see the memberships of another team');
select tests.denied(
  $$ insert into public.accounts_memberships (user_id, account_id, account_role)
     values (tests.user_id('outsider'), tests.account_id('team'), 'member') $$,
  'accounts_memberships', 'an owner cannot insert memberships directly (invitations will do it)');
select tests.denied(
  $$ update public.accounts_memberships set account_role = 'owner'
     where user_id = tests.user_id('member') $$,
  'accounts_memberships', 'an owner cannot change roles directly');
select tests.denied(
  $$ delete from public.accounts_memberships where user_id = tests.user_id('member') $$,
  'accounts_memberships', 'an owner cannot delete memberships directly');

/*
 * service_role
 */
select tests.authenticate_as_service_role();

select set_eq(
  $$ select user_id, account_id from public.accounts_memberships
     where account_id in (tests.account_id('team'), tests.account_id('elsewhere')) $$,
  $$ values (tests.user_id('owner'), tests.account_id('team')),
            (tests.user_id('member'), tests.account_id('team')),
            (tests.user_id('stranger'), tests.account_id('elsewhere')) $$,
  'service_role sees the memberships of every team');
select lives_ok(
  $$ insert into public.accounts_memberships (user_id, account_id, account_role, created_by)
     values (tests.user_id('outsider'), tests.account_id('team'), 'member', tests.user_id('owner')) $$,
  'service_role can add a member');
select results_eq(
  $$ update public.accounts_memberships set account_role = 'owner'
     where user_id = tests.user_id('outsider') and account_id = tests.account_id('team')
     returning account_role::text $$,
  $$ values ('owner') $$,
  'service_role can change a member''s role');
select results_eq(
  $$ delete from public.accounts_memberships
     where user_id = tests.user_id('outsider') and account_id = tests.account_id('team')
     returning user_id $$,
  $$ values (tests.user_id('outsider')) $$,
  'service_role can remove a member');

/*
 * What the denied writes left behind
 */
select tests.clear_authentication();

select set_eq(
  $$ select user_id, account_role::text from public.accounts_memberships
     where account_id = tests.account_id('team') $$,
  $$ values (tests.user_id('owner'), 'owner'), (tests.user_id('member'), 'member') $$,
  'the team''s memberships are exactly as the fixtures made them');

/*
 * Who wrote it: acting on a user's behalf, service_role may name them
 */
select tests.authenticate_as_service_role();
insert into public.accounts_memberships (user_id, account_id, account_role, created_by)
values (tests.user_id('outsider'), tests.account_id('team'), 'member', tests.user_id('owner'));
select tests.clear_authentication();

select results_eq(
  $$ select created_by, updated_by from public.accounts_memberships
     where user_id = tests.user_id('outsider') and account_id = tests.account_id('team') $$,
  $$ values (tests.user_id('owner'), tests.user_id('owner')) $$,
  'a membership written by service_role records the user it named as creator');

select tests.authenticate_as('member');
select results_eq(
  $$ select created_by from public.accounts_memberships
     where user_id = tests.user_id('outsider') and account_id = tests.account_id('team') $$,
  $$ values (tests.user_id('owner')) $$,
  'a member sees a newly added teammate');
select tests.clear_authentication();

update public.accounts_memberships
set created_by = tests.user_id('stranger'), created_at = '2020-01-01 00:00:00+00'
where user_id = tests.user_id('outsider') and account_id = tests.account_id('team');

select results_eq(
  $$ select created_by, created_at from public.accounts_memberships
     where user_id = tests.user_id('outsider') and account_id = tests.account_id('team') $$,
  $$ values (tests.user_id('owner'), now()) $$,
  'created_by and created_at cannot be rewritten by an update');

/*
 * Integrity
 */
select throws_ok(
  $$ insert into public.accounts_memberships (user_id, account_id, account_role)
     values (tests.user_id('member'), tests.user_id('owner'), 'member') $$,
  '23514', 'personal accounts cannot have members',
  'nobody can be made a member of a personal account');
select throws_ok(
  $$ update public.accounts_memberships set account_id = tests.user_id('owner')
     where user_id = tests.user_id('member') and account_id = tests.account_id('team') $$,
  '23514', 'personal accounts cannot have members',
  'a membership cannot be moved onto a personal account');
select throws_ok(
  $$ insert into public.accounts_memberships (user_id, account_id, account_role)
     values (tests.user_id('stranger'), tests.account_id('team'), 'admin') $$,
  '23503', 'insert or update on table "accounts_memberships" violates foreign key constraint "accounts_memberships_account_role_fkey"',
  'a membership''s role must be a known role');
select throws_ok(
  $$ insert into public.accounts_memberships (user_id, account_id, account_role)
     values (tests.user_id('member'), tests.account_id('team'), 'owner') $$,
  '23505', 'duplicate key value violates unique constraint "accounts_memberships_pkey"',
  'a user cannot hold two memberships on the same team');
select throws_ok(
  $$ delete from public.roles where name = 'member' $$,
  '23503', 'update or delete on table "roles" violates foreign key constraint "accounts_memberships_account_role_fkey" on table "accounts_memberships"',
  'a role still held by members cannot be deleted');

delete from auth.users where id = tests.user_id('member');

select is_empty(
  $$ select 1 from public.accounts_memberships where user_id = tests.user_id('member') $$,
  'deleting a user deletes their memberships');

select * from finish();
rollback;
