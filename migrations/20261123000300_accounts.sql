/*
 * Table: public.accounts
 *
 * Everything the product stores belongs to an account. Each user has one
 * personal account, created at sign-up, whose id is the user's id; team
 * accounts are shared through public.accounts_memberships and are the ones
 * with a slug.
 *
 * Who may read and update rows is decided by policies created in a later
 * migration, once the functions they use exist. Until then RLS is on and no
 * policy matches, so nothing is readable through the API.
 */
create table if not exists public.accounts (
  id uuid primary key default gen_random_uuid(),
  primary_owner_user_id uuid not null references auth.users (id) on delete cascade,
  name varchar(255) not null
    constraint accounts_name_not_blank check (btrim(name) <> ''),
  slug varchar(63) unique
    constraint accounts_slug_format check (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
  email varchar(320),
  is_personal_account boolean not null default false,
  picture_url varchar(1000),
  public_data jsonb not null default '{}'::jsonb
    constraint accounts_public_data_is_object check (jsonb_typeof(public_data) = 'object'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid references auth.users (id) on delete set null,
  updated_by uuid references auth.users (id) on delete set null,
  -- A personal account is the user's own: same id, no slug. A team account
  -- is addressed by its slug.
  constraint accounts_personal_id_is_owner check (not is_personal_account or id = primary_owner_user_id),
  constraint accounts_slug_iff_team check (is_personal_account = (slug is null))
);

comment on table public.accounts is 'Personal accounts (one per user, id = user id) and team accounts (shared through accounts_memberships). Everything the product stores belongs to one.';
comment on column public.accounts.primary_owner_user_id is 'The user who owns the account. For a personal account, the user it belongs to.';
comment on column public.accounts.name is 'Display name.';
comment on column public.accounts.slug is 'URL identifier of a team account; null for personal accounts.';
comment on column public.accounts.email is 'Contact address. For personal accounts, copied from auth.users at sign-up.';
comment on column public.accounts.is_personal_account is 'True for the personal account created at sign-up.';
comment on column public.accounts.picture_url is 'Avatar or logo URL.';
comment on column public.accounts.public_data is 'Free-form JSON object the owner may publish to the account''s members.';
comment on column public.accounts.created_by is 'User who created the row; set by trigger.';
comment on column public.accounts.updated_by is 'User who last updated the row; set by trigger.';

create index if not exists ix_accounts_primary_owner_user_id on public.accounts (primary_owner_user_id);

-- Members read accounts; owners may change what describes the account, but
-- never who owns it or what kind of account it is. Creating and deleting
-- accounts goes through trusted server code (service_role) for now.
revoke all on table public.accounts from public, anon, authenticated, service_role;
grant select on table public.accounts to authenticated;
grant update (name, slug, picture_url, public_data) on table public.accounts to authenticated;
grant select, insert, update, delete on table public.accounts to service_role;

alter table public.accounts enable row level security;

create trigger set_accounts_timestamps
  before update on public.accounts
  for each row execute function kit.set_timestamps();

create trigger set_accounts_user_tracking
  before insert or update on public.accounts
  for each row execute function kit.set_user_tracking();
