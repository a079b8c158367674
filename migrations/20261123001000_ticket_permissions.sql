/*
 * Ticket permissions: tickets.update and tickets.delete.
 *
 * Every member of a team reads its tickets; changing or deleting one takes a
 * permission, so a team can keep that to its owners. This file only adds the
 * enum values: PostgreSQL refuses to use a value added by `alter type ... add
 * value` before the transaction that added it commits, and the Supabase CLI
 * runs each migration file in one transaction. The next migration gives the
 * values to the owner role.
 */
alter type public.app_permissions add value if not exists 'tickets.update';
alter type public.app_permissions add value if not exists 'tickets.delete';
