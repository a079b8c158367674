/*
 * Schema kit: the project's internal functions.
 *
 * Trigger functions and other helpers that no API caller should reach live
 * here rather than in `public`, because PostgREST exposes `public` (every
 * function there becomes POST /rpc/<name>) and Supabase grants the API roles
 * every privilege on what is created in `public` by default. Nothing in this
 * schema is granted to anon, authenticated or service_role: triggers call
 * their functions by OID, without checking the caller's privileges.
 */

create schema if not exists kit;

comment on schema kit is 'Internal functions (triggers, helpers). Not exposed through PostgREST and not granted to the API roles.';

revoke all on schema kit from public, anon, authenticated, service_role;

-- Revoking usage on the schema is not enough on its own: a function is
-- executable by PUBLIC when created, and a per-schema default privilege
-- cannot take that back (PostgreSQL only adds to the global defaults per
-- schema). Every function created in kit revokes execute explicitly.
