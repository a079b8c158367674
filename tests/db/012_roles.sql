-- public.roles and public.role_permissions: reference data every signed-in
-- user reads and only service_role changes. Walked as anon, an outsider, a
-- member, an owner and service_role; then the shipped rows themselves.
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
 * Nobody but service_role writes the reference data; anon does not even
 * read it. The other signed-in users, whatever their standing, read it.
 */
select tests.reads_denied('anon', array['roles', 'role_permissions']);

select tests.denied_to(array['anon', 'outsider', 'member', 'owner'],
  $$ insert into public.roles (name, hierarchy_level) values ('admin', 3) $$,
  'roles', 'create roles (they are global, not per team)');
select tests.denied_to(array['anon', 'outsider', 'member', 'owner'],
  $$ update public.roles set hierarchy_level = 9 where name = 'member' $$,
  'roles', 'update roles');
select tests.denied_to(array['anon', 'outsider', 'member', 'owner'],
  $$ delete from public.roles where name = 'member' $$,
  'roles', 'delete roles');
select tests.denied_to(array['anon', 'outsider', 'member', 'owner'],
  $$ insert into public.role_permissions (role, permission) values ('member', 'roles.manage') $$,
  'role_permissions', 'grant a role more permissions');
select tests.denied_to(array['anon', 'outsider', 'member', 'owner'],
  $$ update public.role_permissions set role = 'member' $$,
  'role_permissions', 'move permissions between roles');
select tests.denied_to(array['anon', 'outsider', 'member', 'owner'],
  $$ delete from public.role_permissions $$,
  'role_permissions', 'delete role permissions');

select tests.authenticate_as('outsider');
select results_eq($$ select name::text from public.roles order by hierarchy_level $$,
  $$ values ('owner'), ('member') $$, 'an outsider reads the roles in rank order');
select isnt_empty($$ select * from public.role_permissions $$,
  'an outsider reads the role permissions');

select tests.authenticate_as('member');
select results_eq($$ select name::text from public.roles order by hierarchy_level $$,
  $$ values ('owner'), ('member') $$, 'a member reads the roles in rank order');
select isnt_empty($$ select * from public.role_permissions $$,
  'a member reads the role permissions');

select tests.authenticate_as('owner');
select results_eq($$ select name::text from public.roles order by hierarchy_level $$,
  $$ values ('owner'), ('member') $$, 'an owner reads the roles in rank order');
select isnt_empty($$ select * from public.role_permissions $$,
  'an owner reads the role permissions');

/*
 * service_role maintains the reference data
 */
select tests.authenticate_as_service_role();

select results_eq($$ select name::text from public.roles order by hierarchy_level $$,
  $$ values ('owner'), ('member') $$, 'service_role reads the roles');
select lives_ok($$ insert into public.roles (name, hierarchy_level) values ('admin', 3) $$,
  'service_role can create a role');
select lives_ok($$ insert into public.role_permissions (role, permission) values ('admin', 'members.manage') $$,
  'service_role can grant a permission to a role');
select results_eq($$ update public.roles set hierarchy_level = 4 where name = 'admin' returning hierarchy_level $$,
  $$ values (4) $$, 'service_role can update a role');
select results_eq($$ update public.role_permissions set permission = 'invites.manage' where role = 'admin' returning permission::text $$,
  $$ values ('invites.manage') $$, 'service_role can update a role permission');
select results_eq($$ delete from public.roles where name = 'admin' returning name::text $$,
  $$ values ('admin') $$, 'service_role can delete a role no one holds');

select tests.clear_authentication();

select is_empty($$ select 1 from public.role_permissions where role = 'admin' $$,
  'deleting a role deletes what it granted');

/*
 * The shipped reference data
 */
select results_eq(
  $$ select name::text, hierarchy_level from public.roles order by hierarchy_level $$,
  $$ values ('owner', 1), ('member', 2) $$,
  'the roles are owner (rank 1) and member (rank 2)');
select set_eq(
  $$ select permission from public.role_permissions where role = 'owner' $$,
  $$ select unnest(enum_range(null::public.app_permissions)) $$,
  'the owner role grants every permission');
select is_empty(
  $$ select permission from public.role_permissions where role = 'member' $$,
  'the member role grants no permission');
select throws_ok(
  $$ insert into public.roles (name, hierarchy_level) values ('co_owner', 1) $$,
  '23505', 'duplicate key value violates unique constraint "roles_hierarchy_level_unique"',
  'two roles cannot share a rank');
select throws_ok(
  $$ insert into public.role_permissions (role, permission) values ('owner', 'roles.manage') $$,
  '23505', 'duplicate key value violates unique constraint "role_permissions_role_permission_unique"',
  'a role cannot grant the same permission twice');

select * from finish();
rollback;
