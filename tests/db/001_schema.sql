-- Structure: tables, columns, keys, RLS, privileges, policies and function
-- hygiene. The checks marked "every" scan the catalog, so they also hold
-- later migrations to the same rules.
begin;
create extension if not exists pgtap;
\ir _helpers.psql

select plan(53);

/*
 * Tables and columns
 */
select has_table('public', 'roles', 'public.roles exists');
select has_table('public', 'role_permissions', 'public.role_permissions exists');
select has_table('public', 'accounts', 'public.accounts exists');
select has_table('public', 'accounts_memberships', 'public.accounts_memberships exists');

select columns_are('public', 'roles',
  array['name', 'hierarchy_level'],
  'public.roles has exactly its documented columns');
select columns_are('public', 'role_permissions',
  array['id', 'role', 'permission'],
  'public.role_permissions has exactly its documented columns');
select columns_are('public', 'accounts',
  array['id', 'primary_owner_user_id', 'name', 'slug', 'email', 'is_personal_account',
        'picture_url', 'public_data', 'created_at', 'updated_at', 'created_by', 'updated_by'],
  'public.accounts has exactly its documented columns');
select columns_are('public', 'accounts_memberships',
  array['user_id', 'account_id', 'account_role', 'created_at', 'updated_at', 'created_by', 'updated_by'],
  'public.accounts_memberships has exactly its documented columns');

select col_is_pk('public', 'roles', 'name', 'roles are keyed by name');
select col_is_pk('public', 'role_permissions', 'id', 'role permissions are keyed by id');
select col_is_pk('public', 'accounts', 'id', 'accounts are keyed by id');
select col_is_pk('public', 'accounts_memberships', array['user_id', 'account_id'],
  'a user has at most one membership per account');

select col_type_is('public', 'accounts', 'id', 'uuid', 'account ids are uuids, like user ids');
select col_type_is('public', 'accounts', 'public_data', 'jsonb', 'public_data is jsonb');
select col_type_is('public', 'role_permissions', 'permission', 'app_permissions',
  'role permissions hold app_permissions values');
select col_is_unique('public', 'accounts', 'slug', 'account slugs are unique');
select col_is_unique('public', 'roles', 'hierarchy_level', 'role hierarchy levels are unique');
select col_is_unique('public', 'role_permissions', array['role', 'permission'],
  'a role grants a permission at most once');

select fk_ok('public', 'accounts', 'primary_owner_user_id', 'auth', 'users', 'id',
  'an account''s primary owner is a user');
select fk_ok('public', 'accounts_memberships', 'user_id', 'auth', 'users', 'id',
  'a membership belongs to a user');
select fk_ok('public', 'accounts_memberships', 'account_id', 'public', 'accounts', 'id',
  'a membership belongs to an account');
select fk_ok('public', 'accounts_memberships', 'account_role', 'public', 'roles', 'name',
  'a membership''s role is a known role');
select fk_ok('public', 'role_permissions', 'role', 'public', 'roles', 'name',
  'a role permission belongs to a known role');

select has_enum('public', 'app_permissions', 'public.app_permissions exists');
select ok(
  array['roles.manage', 'billing.manage', 'settings.manage', 'members.manage', 'invites.manage']::public.app_permissions[]
    <@ enum_range(null::public.app_permissions),
  'app_permissions has the five account permissions');

/*
 * Every table in public: RLS on, documented, nothing for PUBLIC or anon
 */
select is_empty($$
  select c.relname from pg_class c
  where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
    and not c.relrowsecurity
    and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e')
$$, 'every table in public has row level security enabled');

select is_empty($$
  select c.relname from pg_class c
  where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
    and obj_description(c.oid, 'pg_class') is null
    and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e')
$$, 'every table in public has a comment');

select is_empty($$
  select c.relname, acl.privilege_type
  from pg_class c, aclexplode(c.relacl) acl
  where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'S')
    and acl.grantee in (0, 'anon'::regrole)
    and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e')
$$, 'no table, view or sequence in public grants anything to PUBLIC or anon');

select is_empty($$
  select p.policyname, p.tablename from pg_policies p
  where p.schemaname = 'public' and not (p.roles <@ array['authenticated']::name[])
$$, 'every policy in public applies to authenticated only');

/*
 * Table privileges per API role: one matrix for every table in the
 * project's schemas (public, kit), so a table added without deciding who
 * may touch it fails here. Grouped by the file that tests the table.
 */
select set_eq(
  $$ select format('%I.%I', n.nspname, c.relname), r.rolname::text,
       array(select p.privilege
             from unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'])
                  with ordinality as p (privilege, i)
             where has_table_privilege(r.rolname, c.oid, p.privilege)
             order by p.i)
     from pg_class c
     join pg_namespace n on n.oid = c.relnamespace
     cross join (values ('anon'::text), ('authenticated'), ('service_role')) as r (rolname)
     where n.nspname in ('public', 'kit') and c.relkind in ('r', 'p', 'v', 'm', 'f')
       -- not an extension's (pgTAP's views, when it is created in public)
       and not exists (select 1 from pg_depend d
                       where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e') $$,
  $$ values
     -- 001_schema.sql
       ('public.accounts'::text, 'anon'::text, '{}'::text[])
     , ('public.accounts', 'authenticated', '{SELECT}')
     , ('public.accounts', 'service_role', '{SELECT,INSERT,UPDATE,DELETE}')
     , ('public.accounts_memberships', 'anon', '{}')
     , ('public.accounts_memberships', 'authenticated', '{SELECT}')
     , ('public.accounts_memberships', 'service_role', '{SELECT,INSERT,UPDATE,DELETE}')
     , ('public.role_permissions', 'anon', '{}')
     , ('public.role_permissions', 'authenticated', '{SELECT}')
     , ('public.role_permissions', 'service_role', '{SELECT,INSERT,UPDATE,DELETE}')
     , ('public.roles', 'anon', '{}')
     , ('public.roles', 'authenticated', '{SELECT}')
     , ('public.roles', 'service_role', '{SELECT,INSERT,UPDATE,DELETE}')
     -- 020_tickets.sql
     , ('public.tickets', 'anon', '{}')
     , ('public.tickets', 'authenticated', '{SELECT,DELETE}')
     , ('public.tickets', 'service_role', '{SELECT,INSERT,UPDATE,DELETE}')
     -- 021_messages.sql
     , ('public.messages', 'anon', '{}')
     , ('public.messages', 'authenticated', '{SELECT}')
     , ('public.messages', 'service_role', '{SELECT,INSERT,UPDATE,DELETE}')
     -- 022_ticket_intakes.sql
     , ('kit.intake_rate_counters', 'anon', '{}')
     , ('kit.intake_rate_counters', 'authenticated', '{}')
     , ('kit.intake_rate_counters', 'service_role', '{}')
     , ('public.ticket_intake_submissions', 'anon', '{}')
     , ('public.ticket_intake_submissions', 'authenticated', '{}')
     , ('public.ticket_intake_submissions', 'service_role', '{SELECT,INSERT,DELETE}')
     , ('public.ticket_intakes', 'anon', '{}')
     , ('public.ticket_intakes', 'authenticated', '{SELECT,DELETE}')
     , ('public.ticket_intakes', 'service_role', '{SELECT,INSERT,UPDATE,DELETE}')
     -- 030_profiles.sql
     , ('public.profiles', 'anon', '{}')
     , ('public.profiles', 'authenticated', '{SELECT}')
     , ('public.profiles', 'service_role', '{SELECT}')
     -- 031_credit_transactions.sql
     , ('public.credit_transactions', 'anon', '{}')
     , ('public.credit_transactions', 'authenticated', '{SELECT}')
     , ('public.credit_transactions', 'service_role', '{SELECT}')
     -- 032_user_mails.sql
     , ('public.email_prices', 'anon', '{}')
     , ('public.email_prices', 'authenticated', '{SELECT}')
     , ('public.email_prices', 'service_role', '{SELECT,INSERT,UPDATE,DELETE}')
     , ('public.user_mails', 'anon', '{}')
     , ('public.user_mails', 'authenticated', '{SELECT}')
     , ('public.user_mails', 'service_role', '{SELECT}')
     -- 035_email_settings.sql
     , ('public.email_sender_settings', 'anon', '{}')
     , ('public.email_sender_settings', 'authenticated', '{SELECT}')
     , ('public.email_sender_settings', 'service_role', '{SELECT,INSERT,UPDATE,DELETE}')
     , ('public.email_settings', 'anon', '{}')
     , ('public.email_settings', 'authenticated', '{SELECT}')
     , ('public.email_settings', 'service_role', '{SELECT}')
     -- 040_message_attachments.sql
     , ('public.message_attachments', 'anon', '{}')
     , ('public.message_attachments', 'authenticated', '{SELECT,DELETE}')
     , ('public.message_attachments', 'service_role', '{SELECT,INSERT,UPDATE,DELETE}')
     -- 050_billing_access.sql
     , ('public.billing_credit_prices', 'anon', '{}')
     , ('public.billing_credit_prices', 'authenticated', '{SELECT}')
     , ('public.billing_credit_prices', 'service_role', '{SELECT,INSERT,UPDATE,DELETE}')
     , ('public.billing_customers', 'anon', '{}')
     , ('public.billing_customers', 'authenticated', '{SELECT}')
     , ('public.billing_customers', 'service_role', '{SELECT,INSERT,UPDATE,DELETE}')
     , ('public.billing_events', 'anon', '{}')
     , ('public.billing_events', 'authenticated', '{}')
     , ('public.billing_events', 'service_role', '{SELECT,INSERT,UPDATE}')
     , ('public.order_items', 'anon', '{}')
     , ('public.order_items', 'authenticated', '{SELECT}')
     , ('public.order_items', 'service_role', '{SELECT,INSERT,UPDATE,DELETE}')
     , ('public.orders', 'anon', '{}')
     , ('public.orders', 'authenticated', '{SELECT}')
     , ('public.orders', 'service_role', '{SELECT,INSERT,UPDATE,DELETE}')
     , ('public.subscription_items', 'anon', '{}')
     , ('public.subscription_items', 'authenticated', '{SELECT}')
     , ('public.subscription_items', 'service_role', '{SELECT,INSERT,UPDATE,DELETE}')
     , ('public.subscriptions', 'anon', '{}')
     , ('public.subscriptions', 'authenticated', '{SELECT}')
     , ('public.subscriptions', 'service_role', '{SELECT,INSERT,UPDATE,DELETE}')
     -- 053_billing_payments_access.sql
     , ('public.billing_payment_keys', 'anon', '{}')
     , ('public.billing_payment_keys', 'authenticated', '{}')
     , ('public.billing_payment_keys', 'service_role', '{SELECT,INSERT,UPDATE,DELETE}')
     , ('public.billing_payments', 'anon', '{}')
     , ('public.billing_payments', 'authenticated', '{SELECT}')
     , ('public.billing_payments', 'service_role', '{SELECT,INSERT,UPDATE,DELETE}')
     , ('public.billing_reversals', 'anon', '{}')
     , ('public.billing_reversals', 'authenticated', '{}')
     , ('public.billing_reversals', 'service_role', '{SELECT,INSERT,UPDATE,DELETE}')
     -- 06x: the email lifecycle (060 reconcile, 062 events, 063 suppressions)
     , ('public.email_events', 'anon', '{}')
     , ('public.email_events', 'authenticated', '{SELECT}')
     , ('public.email_events', 'service_role', '{SELECT}')
     , ('public.email_reconcile_claims', 'anon', '{}')
     , ('public.email_reconcile_claims', 'authenticated', '{}')
     , ('public.email_reconcile_claims', 'service_role', '{SELECT}')
     , ('public.email_suppressions', 'anon', '{}')
     , ('public.email_suppressions', 'authenticated', '{}')
     , ('public.email_suppressions', 'service_role', '{SELECT,INSERT,DELETE}') $$,
  'the API roles hold exactly these privileges on every table in public and kit');

select is(
  (select array_agg(a.attname::text order by a.attname)
   from pg_attribute a
   where a.attrelid = 'public.accounts'::regclass and a.attnum > 0 and not a.attisdropped
     and has_column_privilege('authenticated', a.attrelid, a.attnum, 'UPDATE')),
  array['name', 'picture_url', 'public_data', 'slug'],
  'authenticated may update only name, slug, picture_url and public_data of accounts');

/*
 * Policies
 */
select policies_are('public', 'roles', array['Roles are viewable by signed-in users'],
  'roles has only its read policy');
select policies_are('public', 'role_permissions', array['Role permissions are viewable by signed-in users'],
  'role_permissions has only its read policy');
select policies_are('public', 'accounts',
  array['Accounts are viewable by their owners and members', 'Accounts are updatable by their owners'],
  'accounts has its read and update policies only');
select policies_are('public', 'accounts_memberships',
  array['Memberships are viewable by members of the same account'],
  'accounts_memberships has only its read policy');

/*
 * Functions
 */
select is_empty($$
  select p.oid::regprocedure from pg_proc p
  where p.pronamespace in ('public'::regnamespace, 'kit'::regnamespace)
    and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
    and not exists (select 1 from unnest(p.proconfig) setting where setting like 'search_path=%')
$$, 'every function in public and kit pins its search_path');

select is_empty($$
  select p.oid::regprocedure, r.rolname from pg_proc p
  cross join (values ('anon'), ('public')) as r (rolname)
  where p.prosecdef
    and p.pronamespace not in ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
    and has_function_privilege(r.rolname, p.oid, 'EXECUTE')
$$, 'no security definer function is executable by anon or PUBLIC');

select is_empty($$
  select p.oid::regprocedure, r.rolname from pg_proc p
  cross join (values ('anon'), ('authenticated'), ('service_role'), ('public')) as r (rolname)
  where p.pronamespace = 'kit'::regnamespace
    and has_function_privilege(r.rolname, p.oid, 'EXECUTE')
$$, 'no function in kit is executable by an API role or PUBLIC');

select schema_privs_are('kit', 'anon', array[]::text[], 'anon cannot use schema kit');
select schema_privs_are('kit', 'authenticated', array[]::text[], 'authenticated cannot use schema kit');
select schema_privs_are('kit', 'service_role', array[]::text[], 'service_role cannot use schema kit');

select is_definer('public', 'has_role_on_account', array['uuid', 'character varying'],
  'has_role_on_account runs as its owner, so it can read memberships under RLS');
select is_definer('public', 'has_permission', array['uuid', 'uuid', 'app_permissions'],
  'has_permission runs as its owner, so it can read memberships under RLS');
select is_definer('kit', 'create_personal_account', array[]::text[],
  'create_personal_account runs as its owner, since GoTrue cannot write accounts');
select is_definer('kit', 'ensure_team_account_membership', array[]::text[],
  'ensure_team_account_membership runs as its owner, so RLS cannot hide a personal account from it');

select function_privs_are('public', 'has_role_on_account', array['uuid', 'character varying'], 'anon',
  array[]::text[], 'anon cannot call has_role_on_account');
select function_privs_are('public', 'has_role_on_account', array['uuid', 'character varying'], 'authenticated',
  array['EXECUTE'], 'authenticated can call has_role_on_account');
select function_privs_are('public', 'has_role_on_account', array['uuid', 'character varying'], 'service_role',
  array['EXECUTE'], 'service_role can call has_role_on_account');
select function_privs_are('public', 'has_permission', array['uuid', 'uuid', 'app_permissions'], 'anon',
  array[]::text[], 'anon cannot call has_permission');
select function_privs_are('public', 'has_permission', array['uuid', 'uuid', 'app_permissions'], 'authenticated',
  array['EXECUTE'], 'authenticated can call has_permission');
select function_privs_are('public', 'has_permission', array['uuid', 'uuid', 'app_permissions'], 'service_role',
  array['EXECUTE'], 'service_role can call has_permission');

/*
 * Triggers
 */
select trigger_is('auth', 'users', 'create_personal_account_after_signup', 'kit', 'create_personal_account',
  'inserting a user creates their personal account');
select trigger_is('public', 'accounts_memberships', 'ensure_team_account_membership',
  'kit', 'ensure_team_account_membership',
  'memberships are checked to point at team accounts');

select * from finish();
rollback;
