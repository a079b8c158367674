/*
 * Account access functions.
 *
 * The questions every policy asks: "does the signed-in user belong to this
 * account (with this role)?" and "does this user hold this permission on
 * this account?". They are SECURITY DEFINER because they read
 * accounts_memberships, whose own read policy calls them: run as the
 * caller, they would recurse through RLS. They therefore pin search_path to
 * '' (every name below is schema-qualified), answer only about the
 * signed-in user or an account the caller shares, and are executable by
 * authenticated and service_role only.
 */

/*
 * Function: public.has_role_on_account(account_id, account_role)
 *
 * True when the signed-in user (auth.uid()) is a member of the account and,
 * when account_role is given, holds exactly that role. Personal accounts
 * have no members, so this is false for them: compare
 * primary_owner_user_id with auth.uid() instead.
 */
create or replace function public.has_role_on_account(
  account_id uuid,
  account_role varchar default null
)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (
    select 1
    from public.accounts_memberships membership
    where membership.user_id = (select auth.uid())
      and membership.account_id = has_role_on_account.account_id
      and (
        has_role_on_account.account_role is null
        or membership.account_role = has_role_on_account.account_role
      )
  );
$$;

comment on function public.has_role_on_account(uuid, varchar) is 'True when the signed-in user is a member of the account, with account_role if given.';

revoke all on function public.has_role_on_account(uuid, varchar) from public, anon, authenticated, service_role;
grant execute on function public.has_role_on_account(uuid, varchar) to authenticated, service_role;

/*
 * Function: public.has_permission(user_id, account_id, permission_name)
 *
 * True when the user's role on the account grants the permission. Policies
 * call it with (select auth.uid()). A signed-in caller may ask about
 * themselves, or about a member of an account they belong to (which they
 * could work out from the memberships and role_permissions they can read
 * anyway); any other question answers false, so the function cannot be used
 * to probe strangers' memberships. Callers without a user (service_role,
 * server code) may ask about anyone.
 */
create or replace function public.has_permission(
  user_id uuid,
  account_id uuid,
  permission_name public.app_permissions
)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select
    (
      (select auth.uid()) is null
      or has_permission.user_id = (select auth.uid())
      or public.has_role_on_account(has_permission.account_id)
    )
    and exists (
      select 1
      from public.accounts_memberships membership
      join public.role_permissions role_permission
        on role_permission.role = membership.account_role
      where membership.user_id = has_permission.user_id
        and membership.account_id = has_permission.account_id
        and role_permission.permission = has_permission.permission_name
    );
$$;

comment on function public.has_permission(uuid, uuid, public.app_permissions) is 'True when the user''s role on the account grants the permission. Signed-in callers may only ask about themselves or accounts they belong to.';

revoke all on function public.has_permission(uuid, uuid, public.app_permissions) from public, anon, authenticated, service_role;
grant execute on function public.has_permission(uuid, uuid, public.app_permissions) to authenticated, service_role;
