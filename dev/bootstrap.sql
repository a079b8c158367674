/*
 * dev/bootstrap.sql: make a vanilla PostgreSQL 15 cluster look like a
 * Supabase database, for the parts this project touches.
 *
 * LOCAL ONLY. Never run this against a Supabase project: there, the platform
 * already owns every object below, and the migrations in migrations/ assume
 * them rather than create them.
 *
 * Run it once, as the cluster's superuser `supabase_admin` (the stack runs
 * `initdb -U supabase_admin`), on a fresh cluster, before the migrations
 * and dev/seed.sql, which then run as `postgres`. It is written to be
 * re-runnable, but nothing depends on that.
 *
 * What it mirrors, written from Supabase's published schema descriptions
 * (supabase/postgres's init scripts and migrations, supabase/auth's and
 * supabase/storage's migrations):
 *   - the roles: `supabase_admin` the only superuser; `postgres`, the
 *     project owner's login, demoted to NOSUPERUSER CREATEDB CREATEROLE
 *     REPLICATION BYPASSRLS and made a member of the API roles and of
 *     `supabase_auth_admin` / `supabase_storage_admin`, which own the `auth`
 *     and `storage` schemas; the API roles and the `authenticator` login
 *     PostgREST uses. So a migration or test that needs more than a
 *     project owner may do fails here first, not on the user's project;
 *   - `postgres`'s search_path `"$user", public, extensions`, and
 *     extensions in the `extensions` schema;
 *   - the default privileges that grant every new table, function and
 *     sequence in `public` to anon, authenticated and service_role, which is
 *     why every migration here revokes before it grants;
 *   - `auth.users` with the columns GoTrue has today, and `auth.uid()`,
 *     `auth.role()`, `auth.email()`, `auth.jwt()` as GoTrue defines them;
 *   - `storage.buckets`, `storage.objects`, the path helpers,
 *     `storage.operation()` and Storage's protection against direct
 *     deletes (`storage.allow_delete_query`).
 *
 * What it leaves out on purpose: the other platform roles, GoTrue's other
 * tables (identities, sessions, ...), Storage's other tables (prefixes,
 * multipart uploads, analytics and vector buckets), Realtime, pg_graphql,
 * supautils (on Supabase it lets `postgres` enable a fixed list of
 * extensions; here the ones the tests use are enabled below instead, as a
 * project enables them from the dashboard).
 */

/*
 * Roles
 */

-- The project owner's login. Supabase creates it as a superuser and then
-- demotes it; these are the attributes it keeps. The password is the
-- Supabase CLI's local default (PostgREST, psql and the pgTAP race files
-- log in over TCP, which asks for it), not a secret.
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'postgres') then
    create role postgres;
  end if;
end
$$;
-- A cluster made with `initdb -U postgres` (older scripts, the JS bench
-- peers) has postgres as its only superuser, running this very file:
-- demoting it would leave the cluster without one, and the rest of this
-- file needs one. There it stays a superuser; the rest is mirrored.
do $$
begin
  if (select rolsuper from pg_roles where oid = 10 and rolname = 'postgres') then
    raise notice 'postgres is this cluster''s bootstrap superuser and stays one (initdb -U supabase_admin mirrors Supabase)';
    alter role postgres createdb createrole login replication bypassrls password 'postgres';
  else
    alter role postgres nosuperuser createdb createrole login replication bypassrls password 'postgres';
  end if;
end
$$;
alter role postgres set search_path to "$user", public, extensions;

-- The three roles a request can run as, and the role PostgREST logs in
-- as, then `set role`s to the JWT's role (its password a local convention:
-- PostgREST's db-uri uses it). service_role skips RLS entirely. Supabase
-- made the API roles INHERIT in 2023.
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin inherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin inherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin inherit bypassrls;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit password 'authenticator';
  end if;
  -- The owners of GoTrue's and Storage's schemas: the services log in as
  -- them to run their own migrations and queries.
  if not exists (select 1 from pg_roles where rolname = 'supabase_auth_admin') then
    create role supabase_auth_admin noinherit createrole login noreplication;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'supabase_storage_admin') then
    create role supabase_storage_admin noinherit createrole login noreplication;
  end if;
end
$$;

grant anon, authenticated, service_role to authenticator;
-- What lets the demoted `postgres` manage triggers on auth.users and
-- policies on storage.objects, and `set role` to test as each API role.
grant anon, authenticated, service_role to postgres;
grant supabase_auth_admin, supabase_storage_admin to postgres;
grant authenticator to supabase_storage_admin;
grant anon, authenticated, service_role to supabase_storage_admin;

-- Supabase caps API statements so a slow query cannot hold a connection.
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';

grant all on database postgres to postgres;

/*
 * Extensions
 *
 * Supabase installs extensions into their own schema; seed data and code
 * written for Supabase call e.g. `extensions.crypt(...)`. gen_random_uuid()
 * is in core since PostgreSQL 13. dblink is what the pgTAP race files open
 * their second sessions with: a project enables it from the dashboard (it
 * lands in `extensions`); without supautils (hosted Supabase has it, a bare
 * build of Supabase's schema does not) `postgres` cannot create it itself.
 */

create schema if not exists extensions;
create extension if not exists "uuid-ossp" with schema extensions;
create extension if not exists pgcrypto with schema extensions;
create extension if not exists dblink with schema extensions;
-- pgTAP too, where the dashboard puts it: roles without usage on
-- `extensions` (GoTrue's, Storage's) then cannot call it, as on Supabase.
create extension if not exists pgtap with schema extensions;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
grant all on schema extensions to postgres;
grant all on all tables in schema extensions to postgres with grant option;
grant all on all routines in schema extensions to postgres with grant option;
grant all on all sequences in schema extensions to postgres with grant option;

/*
 * Schema public
 *
 * Supabase grants usage to the API roles and, by default, every privilege on
 * whatever `postgres` creates here. Migrations must therefore revoke what
 * they do not mean to expose; mirroring the defaults makes a missing revoke
 * fail the tests here as it would leak on Supabase.
 */

grant usage on schema public to postgres, anon, authenticated, service_role;
-- The cluster's superuser owns the database, so (PostgreSQL 15) only it may
-- create in public by default; the project owner must too.
grant all on schema public to postgres;

alter default privileges for role postgres in schema public
  grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on sequences to postgres, anon, authenticated, service_role;

/*
 * Schema auth (GoTrue)
 */

create schema if not exists auth authorization supabase_auth_admin;
grant usage on schema auth to anon, authenticated, service_role;
-- GoTrue creates and owns what follows (its migrations run as this role).
set role supabase_auth_admin;

-- auth.users as GoTrue leaves it today. Types, defaults, the generated
-- confirmed_at and the partial unique index on email match Supabase, so
-- triggers and seeds written against Supabase work here unchanged.
create table if not exists auth.users (
  instance_id uuid,
  id uuid not null,
  aud varchar(255),
  role varchar(255),
  email varchar(255),
  encrypted_password varchar(255),
  email_confirmed_at timestamptz,
  invited_at timestamptz,
  confirmation_token varchar(255),
  confirmation_sent_at timestamptz,
  recovery_token varchar(255),
  recovery_sent_at timestamptz,
  email_change_token_new varchar(255),
  email_change varchar(255),
  email_change_sent_at timestamptz,
  last_sign_in_at timestamptz,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  is_super_admin boolean,
  created_at timestamptz,
  updated_at timestamptz,
  phone text unique default null,
  phone_confirmed_at timestamptz,
  phone_change text default '',
  phone_change_token varchar(255) default '',
  phone_change_sent_at timestamptz,
  confirmed_at timestamptz generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
  email_change_token_current varchar(255) default '',
  email_change_confirm_status smallint default 0
    check (email_change_confirm_status >= 0 and email_change_confirm_status <= 2),
  banned_until timestamptz,
  reauthentication_token varchar(255) default '',
  reauthentication_sent_at timestamptz,
  is_sso_user boolean not null default false,
  deleted_at timestamptz,
  is_anonymous boolean not null default false,
  constraint users_pkey primary key (id)
);

comment on table auth.users is 'Auth: Stores user login data within a secure schema.';
comment on column auth.users.is_sso_user is 'Auth: Set this column to true when the account comes from SSO. These accounts can have duplicate emails.';

create unique index if not exists users_email_partial_key on auth.users (email) where (is_sso_user = false);
create index if not exists users_instance_id_idx on auth.users (instance_id);
create index if not exists users_instance_id_email_idx on auth.users (instance_id, lower((email)::text));
create index if not exists users_is_anonymous_idx on auth.users (is_anonymous);

-- GoTrue enables RLS on its tables and grants the API roles nothing on them.
alter table auth.users enable row level security;

-- The claim readers. PostgREST 9 set one GUC per claim
-- (request.jwt.claim.sub); PostgREST 10+ sets request.jwt.claims to the whole
-- JSON payload. GoTrue's definitions read both, in that order.
create or replace function auth.uid()
returns uuid
language sql stable
as $$
  select
    coalesce(
      nullif(current_setting('request.jwt.claim.sub', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid
$$;

create or replace function auth.role()
returns text
language sql stable
as $$
  select
    coalesce(
      nullif(current_setting('request.jwt.claim.role', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
    )::text
$$;

create or replace function auth.email()
returns text
language sql stable
as $$
  select
    coalesce(
      nullif(current_setting('request.jwt.claim.email', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
    )::text
$$;

create or replace function auth.jwt()
returns jsonb
language sql stable
as $$
  select
    coalesce(
      nullif(current_setting('request.jwt.claim', true), ''),
      nullif(current_setting('request.jwt.claims', true), '')
    )::jsonb
$$;

comment on function auth.uid() is 'Deprecated. Use auth.jwt() -> ''sub'' instead.';
comment on function auth.role() is 'Deprecated. Use auth.jwt() -> ''role'' instead.';
comment on function auth.email() is 'Deprecated. Use auth.jwt() -> ''email'' instead.';

reset role;
-- What supabase/postgres grants the demoted `postgres` on GoTrue's schema.
grant all on schema auth to postgres;
grant all on all tables in schema auth to postgres;
grant all on all sequences in schema auth to postgres;
grant all on all routines in schema auth to postgres;
alter role supabase_auth_admin set search_path = auth;

/*
 * Schema storage (Supabase Storage)
 */

create schema if not exists storage authorization supabase_storage_admin;
grant usage on schema storage to postgres, anon, authenticated, service_role;
-- Storage creates and owns what follows (its migrations run as this role).
set role supabase_storage_admin;

-- Storage's bucket kinds; projects only ever make STANDARD ones here.
do $$
begin
  if not exists (select 1 from pg_type where typname = 'buckettype' and typnamespace = 'storage'::regnamespace) then
    create type storage.buckettype as enum ('STANDARD', 'ANALYTICS', 'VECTOR');
  end if;
end
$$;

create table if not exists storage.buckets (
  id text not null,
  name text not null,
  owner uuid,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  public boolean default false,
  avif_autodetection boolean default false,
  file_size_limit bigint,
  allowed_mime_types text[],
  owner_id text,
  type storage.buckettype not null default 'STANDARD',
  constraint buckets_pkey primary key (id)
);

comment on column storage.buckets.owner is 'Field is deprecated, use owner_id instead';

create unique index if not exists bname on storage.buckets using btree (name);

create table if not exists storage.objects (
  id uuid not null default gen_random_uuid(),
  bucket_id text,
  name text,
  owner uuid,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  last_accessed_at timestamptz default now(),
  metadata jsonb,
  path_tokens text[] generated always as (string_to_array(name, '/')) stored,
  version text,
  owner_id text,
  user_metadata jsonb,
  constraint objects_pkey primary key (id),
  constraint "objects_bucketId_fkey" foreign key (bucket_id) references storage.buckets (id)
);

comment on column storage.objects.owner is 'Field is deprecated, use owner_id instead';

create unique index if not exists bucketid_objname on storage.objects using btree (bucket_id, name);
create index if not exists name_prefix_search on storage.objects using btree (name text_pattern_ops);

-- Storage turns RLS on and grants the API roles everything: access is
-- decided by the policies projects write on these two tables.
alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;

grant all on table storage.buckets to postgres, anon, authenticated, service_role;
grant all on table storage.objects to postgres, anon, authenticated, service_role;

-- 'a/b/c.png' -> {a,b}
create or replace function storage.foldername(name text)
returns text[]
language plpgsql immutable
as $function$
declare
  _parts text[];
begin
  select string_to_array(name, '/') into _parts;
  return _parts[1 : array_length(_parts, 1) - 1];
end
$function$;

-- 'a/b/c.png' -> 'c.png'
create or replace function storage.filename(name text)
returns text
language plpgsql
as $function$
declare
  _parts text[];
begin
  select string_to_array(name, '/') into _parts;
  return _parts[array_length(_parts, 1)];
end
$function$;

-- 'a/b/c.png' -> 'png'
create or replace function storage.extension(name text)
returns text
language plpgsql immutable
as $function$
declare
  _parts text[];
  _filename text;
begin
  select string_to_array(name, '/') into _parts;
  select _parts[array_length(_parts, 1)] into _filename;
  return reverse(split_part(reverse(_filename), '.', 1));
end
$function$;

-- The name of the Storage API operation running the current transaction.
-- Storage sets `storage.operation` (with the role and JWT claims) before
-- every query it makes for a request (src/internal/database/postgres/scope.ts),
-- e.g. 'storage.object.sign' for POST /object/sign/{bucket}/{path}; policies
-- may read it (tenant migration 0024). Outside Storage it is unset: null.
create or replace function storage.operation()
returns text
language plpgsql stable
as $$
begin
  return current_setting('storage.operation', true);
end;
$$;

create or replace function storage.update_updated_at_column()
returns trigger
language plpgsql
as $$
begin
  new.updated_at = now();
  return new;
end;
$$;

create or replace trigger update_objects_updated_at
  before update on storage.objects
  for each row execute function storage.update_updated_at_column();

-- Storage refuses DELETE statements on its two tables unless the session
-- says it is Storage (which sets storage.allow_delete_query = 'true' when
-- its API deletes): rows deleted by hand would orphan the stored bytes.
-- A statement trigger, so it fires even when no row matches; SQLSTATE 42501.
create or replace function storage.protect_delete()
returns trigger
language plpgsql
as $$
begin
  if coalesce(current_setting('storage.allow_delete_query', true), 'false') <> 'true' then
    raise exception 'Direct deletion from storage tables is not allowed. Use the Storage API instead.'
      using errcode = '42501',
            hint = 'This prevents accidental data loss from orphaned objects.';
  end if;
  return null;
end;
$$;

create or replace trigger protect_buckets_delete
  before delete on storage.buckets
  for each statement execute function storage.protect_delete();
create or replace trigger protect_objects_delete
  before delete on storage.objects
  for each statement execute function storage.protect_delete();

reset role;
-- What supabase/postgres and Storage grant the demoted `postgres`.
grant all on schema storage to postgres;
grant all on storage.buckets, storage.objects to postgres with grant option;
grant all on all sequences in schema storage to postgres;
grant all on all routines in schema storage to postgres;
alter role supabase_storage_admin set search_path = storage;
