/*
 * Table: public.accounts_memberships
 *
 * Who belongs to which team account, and with which role. Personal accounts
 * have no memberships: their owner is primary_owner_user_id.
 *
 * In this slice nobody writes memberships through the API: team creation and
 * invitations will go through trusted server code or dedicated functions.
 * Read policies come in a later migration, with the functions they use.
 */
create table if not exists public.accounts_memberships (
  user_id uuid not null references auth.users (id) on delete cascade,
  account_id uuid not null references public.accounts (id) on delete cascade,
  account_role varchar(50) not null references public.roles (name),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid references auth.users (id) on delete set null,
  updated_by uuid references auth.users (id) on delete set null,
  primary key (user_id, account_id)
);

comment on table public.accounts_memberships is 'Users belonging to team accounts, each with one role. Personal accounts have none.';
comment on column public.accounts_memberships.user_id is 'The member.';
comment on column public.accounts_memberships.account_id is 'The team account.';
comment on column public.accounts_memberships.account_role is 'The member''s role on the account; see public.roles and public.role_permissions.';
comment on column public.accounts_memberships.created_by is 'User who created the row; set by trigger.';
comment on column public.accounts_memberships.updated_by is 'User who last updated the row; set by trigger.';

-- The primary key serves lookups by user; these serve the other directions.
create index if not exists ix_accounts_memberships_account_id on public.accounts_memberships (account_id);
create index if not exists ix_accounts_memberships_account_role on public.accounts_memberships (account_role);

revoke all on table public.accounts_memberships from public, anon, authenticated, service_role;
grant select on table public.accounts_memberships to authenticated;
grant select, insert, update, delete on table public.accounts_memberships to service_role;

alter table public.accounts_memberships enable row level security;

/*
 * Function: kit.ensure_team_account_membership()
 *
 * BEFORE INSERT OR UPDATE trigger: a membership may only point at a team
 * account. A CHECK constraint cannot look at another table, hence a trigger.
 * SECURITY DEFINER so the check sees every account: run as a signed-in
 * writer, RLS would hide a stranger's personal account and let the
 * membership through.
 */
create or replace function kit.ensure_team_account_membership()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if exists (
    select 1
    from public.accounts account
    where account.id = new.account_id
      and account.is_personal_account
  ) then
    raise exception 'personal accounts cannot have members'
      using errcode = 'check_violation',
            detail = format('account %s is a personal account', new.account_id),
            table = 'accounts_memberships',
            schema = 'public';
  end if;
  return new;
end;
$$;

comment on function kit.ensure_team_account_membership() is 'BEFORE INSERT OR UPDATE trigger on accounts_memberships: rejects memberships on personal accounts.';

revoke all on function kit.ensure_team_account_membership() from public, anon, authenticated, service_role;

create trigger ensure_team_account_membership
  before insert or update of account_id on public.accounts_memberships
  for each row execute function kit.ensure_team_account_membership();

create trigger set_accounts_memberships_timestamps
  before update on public.accounts_memberships
  for each row execute function kit.set_timestamps();

create trigger set_accounts_memberships_user_tracking
  before insert or update on public.accounts_memberships
  for each row execute function kit.set_user_tracking();
