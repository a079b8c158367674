-- public.has_role_on_account and public.has_permission: the answers every
-- policy builds on, for owner, member, outsider, anon and service_role, and
-- the guard that stops a signed-in user probing strangers' memberships.
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
  perform tests.create_user('stranger');
  perform tests.create_team_account('stranger', 'elsewhere');
end
$$;

select plan(30);

/*
 * anon: may not call either function
 */
select tests.authenticate_as_anon();

select throws_ok(
  $$ select public.has_role_on_account(tests.account_id('team')) $$,
  '42501', 'permission denied for function has_role_on_account',
  'anon cannot call has_role_on_account');
select throws_ok(
  $$ select public.has_permission(tests.user_id('owner'), tests.account_id('team'), 'roles.manage') $$,
  '42501', 'permission denied for function has_permission',
  'anon cannot call has_permission');

/*
 * owner
 */
select tests.authenticate_as('owner');

select ok(public.has_role_on_account(tests.account_id('team')),
  'the owner has a role on their team');
select ok(public.has_role_on_account(tests.account_id('team'), 'owner'),
  'the owner holds the owner role on their team');
select ok(not public.has_role_on_account(tests.account_id('team'), 'member'),
  'the owner does not hold the member role on their team');
select ok(not public.has_role_on_account(tests.user_id('owner')),
  'nobody has a role on a personal account, not even its user');
select ok(not public.has_role_on_account(tests.account_id('elsewhere')),
  'the owner has no role on a team they do not belong to');
select ok(
  (select bool_and(public.has_permission(tests.user_id('owner'), tests.account_id('team'), permission))
   from unnest(enum_range(null::public.app_permissions)) as permission),
  'the owner holds every permission on their team');
select ok(not public.has_permission(tests.user_id('owner'), tests.account_id('elsewhere'), 'settings.manage'),
  'the owner holds no permission on another team');
select ok(not public.has_permission(tests.user_id('member'), tests.account_id('team'), 'members.manage'),
  'the owner can see that their member cannot manage members');

/*
 * member
 */
select tests.authenticate_as('member');

select ok(public.has_role_on_account(tests.account_id('team')),
  'a member has a role on their team');
select ok(public.has_role_on_account(tests.account_id('team'), 'member'),
  'a member holds the member role');
select ok(not public.has_role_on_account(tests.account_id('team'), 'owner'),
  'a member does not hold the owner role');
select ok(
  (select not bool_or(public.has_permission(tests.user_id('member'), tests.account_id('team'), permission))
   from unnest(enum_range(null::public.app_permissions)) as permission),
  'a member holds no permission on their team');
select ok(public.has_permission(tests.user_id('owner'), tests.account_id('team'), 'billing.manage'),
  'a member can ask about a teammate''s permissions on their shared team');
select ok(not public.has_permission(tests.user_id('stranger'), tests.account_id('elsewhere'), 'billing.manage'),
  'a member gets false when asking about a team they do not belong to');

/*
 * outsider
 */
select tests.authenticate_as('outsider');

select ok(not public.has_role_on_account(tests.account_id('team')),
  'an outsider has no role on the team');
select ok(not public.has_role_on_account(tests.account_id('team'), 'owner'),
  'an outsider does not hold the owner role');
select ok(not public.has_permission(tests.user_id('outsider'), tests.account_id('team'), 'settings.manage'),
  'an outsider holds no permission on the team');
select ok(not public.has_permission(tests.user_id('owner'), tests.account_id('team'), 'settings.manage'),
  'an outsider cannot learn the owner''s permissions on a team they are not in');
select ok(not public.has_permission(tests.user_id('stranger'), tests.account_id('elsewhere'), 'roles.manage'),
  'an outsider cannot learn who owns another team');

/*
 * service_role: no user of its own, may ask about anyone
 */
select tests.authenticate_as_service_role();

select ok(not public.has_role_on_account(tests.account_id('team')),
  'service_role itself has no role on any account');
select ok(public.has_permission(tests.user_id('owner'), tests.account_id('team'), 'roles.manage'),
  'service_role can check an owner''s permission');
select ok(not public.has_permission(tests.user_id('member'), tests.account_id('team'), 'roles.manage'),
  'service_role can check that a member lacks a permission');
select ok(not public.has_permission(tests.user_id('outsider'), tests.account_id('team'), 'roles.manage'),
  'service_role can check that an outsider lacks a permission');

/*
 * Answers follow the data
 */
select tests.clear_authentication();
update public.accounts_memberships set account_role = 'owner'
where user_id = tests.user_id('member') and account_id = tests.account_id('team');

select tests.authenticate_as('member');
select ok(public.has_permission(tests.user_id('member'), tests.account_id('team'), 'members.manage'),
  'a member promoted to owner gains the owner''s permissions');

select tests.authenticate_as_service_role();
insert into public.role_permissions (role, permission) values ('member', 'invites.manage');
select tests.clear_authentication();
insert into public.accounts_memberships (user_id, account_id, account_role)
values (tests.user_id('outsider'), tests.account_id('team'), 'member');

select tests.authenticate_as('outsider');
select ok(public.has_permission(tests.user_id('outsider'), tests.account_id('team'), 'invites.manage'),
  'a permission granted to the member role reaches every member');
select ok(not public.has_permission(tests.user_id('outsider'), tests.account_id('team'), 'billing.manage'),
  'a member still lacks the permissions their role does not grant');

select tests.clear_authentication();
delete from public.accounts_memberships
where user_id = tests.user_id('outsider') and account_id = tests.account_id('team');

select tests.authenticate_as('outsider');
select ok(not public.has_role_on_account(tests.account_id('team')),
  'a removed member no longer has a role');
select ok(not public.has_permission(tests.user_id('outsider'), tests.account_id('team'), 'invites.manage'),
  'a removed member no longer holds their role''s permissions');

select * from finish();
rollback;
