/*
 * Profile and signup grant on sign-up.
 *
 * Every auth.users row gets a profile with the default balance
 * (profiles.credits defaults to 300) and the ledger row that explains it
 * (reason signup_grant, reference the user id), so balance and ledger agree
 * from the first moment. Anonymous sign-ins get theirs too: they cannot
 * send (reserve_email refuses them) until they link an email identity,
 * which keeps the same user id and so the same profile.
 */

/*
 * Function: kit.profile_email(address)
 *
 * The address as profiles.email can hold it (trimmed), or null when the
 * column's format check would refuse it: a sign-up must not fail over the
 * contact address.
 */
create or replace function kit.profile_email(address text)
returns text
language sql
immutable
set search_path = ''
as $$
  select trimmed
  from (select nullif(btrim(profile_email.address), '') as trimmed) as candidate
  where char_length(trimmed) <= 320
    and trimmed ~ '^[^@[:space:]]+@[^@[:space:]]+$';
$$;

comment on function kit.profile_email(text) is 'The trimmed address when profiles.email accepts it, else null.';

revoke all on function kit.profile_email(text) from public, anon, authenticated, service_role;

/*
 * Function: kit.create_profile()
 *
 * AFTER INSERT trigger on auth.users. SECURITY DEFINER because GoTrue
 * inserts as supabase_auth_admin, which has no rights on public.profiles or
 * the ledger; search_path is pinned and every name is qualified.
 */
create or replace function kit.create_profile()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  granted integer;
begin
  insert into public.profiles (id, email)
  values (new.id, kit.profile_email(new.email))
  returning credits into granted;

  insert into public.credit_transactions (user_id, amount, reason, reference)
  values (new.id, granted, 'signup_grant', new.id::text);

  return new;
end;
$$;

comment on function kit.create_profile() is 'AFTER INSERT trigger on auth.users: creates the user''s profile with the default credits and records them as the signup grant.';

revoke all on function kit.create_profile() from public, anon, authenticated, service_role;

create trigger create_profile_after_signup
  after insert on auth.users
  for each row execute function kit.create_profile();

/*
 * Users who signed up before this migration (none locally, where the seed
 * runs after it; on a live project, everyone) get the same: a profile and
 * its signup grant. Re-running adds nothing.
 */
with new_profiles as (
  insert into public.profiles (id, email)
  select auth_user.id, kit.profile_email(auth_user.email)
  from auth.users auth_user
  on conflict (id) do nothing
  returning id, credits
)
insert into public.credit_transactions (user_id, amount, reason, reference)
select new_profiles.id, new_profiles.credits, 'signup_grant', new_profiles.id::text
from new_profiles;
