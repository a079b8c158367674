/*
 * Ticket permissions for the owner role.
 *
 * The owner role grants every permission (the roles migration gives it the
 * whole enum as it stood then), so the two values the previous migration
 * added are granted here. Members get neither: they read tickets and reply,
 * but do not change or delete them.
 */
insert into public.role_permissions (role, permission)
values
  ('owner', 'tickets.update'),
  ('owner', 'tickets.delete')
on conflict (role, permission) do nothing;
