/*
 * Row-level security policies for accounts and their memberships.
 *
 * Reading: a user sees their personal account, the team accounts they belong
 * to (or primarily own), and the memberships of those team accounts.
 * Writing: the owner of an account may update its descriptive columns (the
 * column grants in the accounts migration say which); on a team account
 * "owner" means holding settings.manage, which the owner role grants.
 * Nothing else is writable through the API; service_role bypasses RLS.
 *
 * auth.uid() is wrapped in a scalar subquery so Postgres evaluates it once
 * per statement rather than once per row.
 */

/*
 * public.accounts
 */
create policy "Accounts are viewable by their owners and members"
  on public.accounts
  for select
  to authenticated
  using (
    primary_owner_user_id = (select auth.uid())
    or public.has_role_on_account(id)
  );

create policy "Accounts are updatable by their owners"
  on public.accounts
  for update
  to authenticated
  using (
    primary_owner_user_id = (select auth.uid())
    or public.has_permission((select auth.uid()), id, 'settings.manage'::public.app_permissions)
  )
  with check (
    primary_owner_user_id = (select auth.uid())
    or public.has_permission((select auth.uid()), id, 'settings.manage'::public.app_permissions)
  );

/*
 * public.accounts_memberships
 */
create policy "Memberships are viewable by members of the same account"
  on public.accounts_memberships
  for select
  to authenticated
  using (
    user_id = (select auth.uid())
    or public.has_role_on_account(account_id)
  );
