/*
 * dev/bootstrap.sql: make a vanilla PostgreSQL 15 cluster look like a
 * Supabase database, for the parts this project touches.
 *
 * LOCAL ONLY. Never run this against a Supabase project: there, the platform
 * already owns every object below, and the migrations in migrations/ assume
 * them rather than create them.
 *
 * Run it once, as the `postgres` superuser, on a fresh cluster created with
 * `initdb -U postgres`, before the migrations and dev/seed.sql. It is written
 * to be re-runnable, but nothing depends on that.
 *
 * What it mirrors, and from where:
 *   - the API roles and the `authenticator` login PostgREST uses
 *     (supabase/postgres, migrations/db/init-scripts/00000000000000-initial-schema.sql);
 *   - the default privileges that grant every new table, function and
 *     sequence in `public` to anon, authenticated and service_role, which is
 *     why every migration here revokes before it grants;
 *   - `auth.users` with the columns GoTrue has today, and `auth.uid()`,
 *     `auth.role()`, `auth.email()`, `auth.jwt()` as GoTrue defines them
 *     (supabase/auth, migrations/20220224000811 and 20220531120530);
 *   - `storage.buckets`, `storage.objects`, the path helpers and
 *     `storage.operation()` (supabase/storage, migrations/tenant/0002 and
 *     later, 0024 for the operation).
 *
 * What it leaves out on purpose: supabase_admin and the other platform
 * roles, GoTrue's other tables (identities, sessions, ...), Realtime,
 * pg_graphql, and table ownership by supabase_auth_admin /
 * supabase_storage_admin (here `postgres` owns everything and is a
 * superuser, so ownership would change nothing we can observe).
 */

/*
 * Roles
 */

-- initdb -U postgres creates it; this only guards against a cluster made
-- with another superuser name.
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'postgres') then
    create role postgres superuser login;
  end if;
end
$$;

-- The three roles a request can run as. NOINHERIT and NOLOGIN as in
-- Supabase; service_role skips RLS entirely.
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  -- The role PostgREST logs in as, then `set role`s to the JWT's role. The
  -- password is a local convention (PostgREST's db-uri uses it), not a secret.
  if not exists (select 1 from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit password 'authenticator';
  end if;
end
$$;

grant anon, authenticated, service_role to authenticator;

-- Supabase caps API statements so a slow query cannot hold a connection.
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';

/*
 * Extensions
 *
 * Supabase installs extensions into their own schema; seed data and code
 * written for Supabase call e.g. `extensions.crypt(...)`. gen_random_uuid()
 * is in core since PostgreSQL 13.
 */

create schema if not exists extensions;
create extension if not exists pgcrypto with schema extensions;
grant usage on schema extensions to postgres, anon, authenticated, service_role;

/*
 * Schema public
 *
 * Supabase grants usage to the API roles and, by default, every privilege on
 * whatever `postgres` creates here. Migrations must therefore revoke what
 * they do not mean to expose; mirroring the defaults makes a missing revoke
 * fail the tests here as it would leak on Supabase.
 */

grant usage on schema public to postgres, anon, authenticated, service_role;

alter default privileges for role postgres in schema public
  grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on sequences to postgres, anon, authenticated, service_role;

/*
 * Schema auth (GoTrue)
 */

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

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

/*
 * Schema storage (Supabase Storage)
 */

create schema if not exists storage;
grant usage on schema storage to postgres, anon, authenticated, service_role;

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
