/*
 * Audit column triggers: created_at/updated_at and created_by/updated_by.
 *
 * Shared by every table that carries these columns. Attach set_timestamps
 * BEFORE UPDATE and set_user_tracking BEFORE INSERT OR UPDATE. Both live in
 * kit, so no API role can call them.
 */

/*
 * Function: kit.set_timestamps()
 *
 * BEFORE UPDATE trigger: stamps updated_at and keeps created_at as it was,
 * whatever the statement tried to write. Inserts keep the column defaults
 * (now()), so seeds and imports may still set historical values.
 */
create or replace function kit.set_timestamps()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.created_at := old.created_at;
  new.updated_at := now();
  return new;
end;
$$;

comment on function kit.set_timestamps() is 'BEFORE UPDATE trigger: sets updated_at to now() and keeps created_at unchanged.';

revoke all on function kit.set_timestamps() from public, anon, authenticated, service_role;

/*
 * Function: kit.set_user_tracking()
 *
 * BEFORE INSERT OR UPDATE trigger for tables with created_by/updated_by.
 * The signed-in user (auth.uid()) always wins, so a user cannot attribute a
 * row to someone else. When there is no user (service_role, or a direct
 * connection), the values the statement gave are kept, so trusted server code
 * can act on a user's behalf; an update that does not name updated_by clears
 * it rather than leave the previous writer's id there.
 */
create or replace function kit.set_user_tracking()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  current_user_id uuid := auth.uid();
begin
  if tg_op = 'INSERT' then
    new.created_by := coalesce(current_user_id, new.created_by);
    new.updated_by := coalesce(current_user_id, new.updated_by, new.created_by);
  else
    new.created_by := old.created_by;
    new.updated_by := coalesce(
      current_user_id,
      case when new.updated_by is distinct from old.updated_by then new.updated_by end
    );
  end if;
  return new;
end;
$$;

comment on function kit.set_user_tracking() is 'BEFORE INSERT OR UPDATE trigger: fills created_by/updated_by from auth.uid(); keeps created_by unchanged on update.';

revoke all on function kit.set_user_tracking() from public, anon, authenticated, service_role;
