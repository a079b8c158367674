/*
 * Profiles: each user's credit balance for sending email.
 *
 * One row per auth.users row, with the same id, created at sign-up by a
 * trigger (a later migration) together with the signup grant in the credit
 * ledger, public.credit_transactions. `credits` is the balance; the ledger
 * says how it came to be, and the two always agree: the balance only moves
 * through the functions that write the ledger (reserve_email,
 * finalize_email, grant_credits), which run as the table's owner. No API
 * role may write `credits`, service_role included, since a direct write
 * would leave a balance the ledger cannot explain.
 *
 * A user reads their own profile and may change its contact address; the
 * address they sign in with stays in auth.users, which is GoTrue's to change.
 */

/*
 * Table: public.profiles
 */
create table if not exists public.profiles (
  id uuid primary key references auth.users (id) on delete cascade,
  email text
    constraint profiles_email_format check (
      char_length(email) <= 320
      and email ~ '^[^@[:space:]]+@[^@[:space:]]+$'
    ),
  credits integer not null default 300
    constraint profiles_credits_not_negative check (credits >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

comment on table public.profiles is 'One per user (id = user id): the credit balance for sending email and a contact address. The balance moves only through the credit ledger functions; users read their own profile and may change its email.';
comment on column public.profiles.id is 'The user, as in auth.users.';
comment on column public.profiles.email is 'Contact address, copied from auth.users at sign-up and editable by the user; not the sign-in address. Null for anonymous and phone sign-ups.';
comment on column public.profiles.credits is 'Credits left to spend; never negative. Always equal to the sum of the user''s rows in credit_transactions.';

-- Users read their own profile and change only its email. service_role
-- reads every profile and may correct an email; credits change through
-- grant_credits. Profiles come and go with their auth.users row, so nobody
-- inserts or deletes one through the API.
revoke all on table public.profiles from public, anon, authenticated, service_role;
grant select on table public.profiles to authenticated, service_role;
grant update (email) on table public.profiles to authenticated, service_role;

alter table public.profiles enable row level security;

create policy "Profiles are viewable by their users"
  on public.profiles
  for select
  to authenticated
  using (id = (select auth.uid()));

create policy "Profiles are updatable by their users"
  on public.profiles
  for update
  to authenticated
  using (id = (select auth.uid()))
  with check (id = (select auth.uid()));

create trigger set_profiles_timestamps
  before update on public.profiles
  for each row execute function kit.set_timestamps();
