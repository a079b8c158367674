/*
 * Personal account on sign-up.
 *
 * Every auth.users row gets a personal account with the same id, so code can
 * treat "the user" and "the user's account" alike and a foreign key to
 * public.accounts covers both kinds of owner.
 */

/*
 * Function: kit.create_personal_account()
 *
 * AFTER INSERT trigger on auth.users. SECURITY DEFINER because GoTrue
 * inserts as supabase_auth_admin, which has no rights on public.accounts;
 * search_path is pinned and every name is qualified. The name comes from the
 * sign-up metadata when given (name, then full_name), else the part of the
 * email before the '@', else a placeholder (anonymous and phone sign-ups
 * have no email).
 */
create or replace function kit.create_personal_account()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  display_name text;
  avatar_url text;
begin
  display_name := coalesce(
    nullif(btrim(new.raw_user_meta_data ->> 'name'), ''),
    nullif(btrim(new.raw_user_meta_data ->> 'full_name'), ''),
    nullif(btrim(split_part(new.email, '@', 1)), ''),
    'Personal account'
  );

  -- A URL too long for the column is dropped, not truncated into a broken one.
  avatar_url := new.raw_user_meta_data ->> 'avatar_url';
  if char_length(avatar_url) > 1000 then
    avatar_url := null;
  end if;

  insert into public.accounts (
    id,
    primary_owner_user_id,
    name,
    is_personal_account,
    email,
    picture_url,
    created_by,
    updated_by
  )
  values (
    new.id,
    new.id,
    left(display_name, 255),
    true,
    new.email,
    avatar_url,
    new.id,
    new.id
  );

  return new;
end;
$$;

comment on function kit.create_personal_account() is 'AFTER INSERT trigger on auth.users: creates the user''s personal account (id = user id).';

revoke all on function kit.create_personal_account() from public, anon, authenticated, service_role;

create trigger create_personal_account_after_signup
  after insert on auth.users
  for each row execute function kit.create_personal_account();
