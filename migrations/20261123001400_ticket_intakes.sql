/*
 * Ticket intakes: an account's public support form settings.
 *
 * An account that wants tickets from an anonymous web form gets one intake
 * row. Its intake_key is public (it sits in the form's HTML) and only names
 * the account; abuse is held off by the captcha, the allowed origins and
 * the rate limits below, which the ticket-intake function enforces through
 * public.intake_begin and public.intake_submit.
 *
 * Members read their account's intake; those who may manage the account's
 * settings (settings.manage) create, change and remove it. Anonymous callers
 * never read this table: the intake function does, as service_role.
 */

/*
 * Table: public.ticket_intakes
 */
create table if not exists public.ticket_intakes (
  account_id uuid primary key references public.accounts (id) on delete cascade,
  enabled boolean not null default true,
  intake_key text not null
    constraint ticket_intakes_intake_key_key unique
    constraint ticket_intakes_intake_key_format check (intake_key ~ '^[a-z0-9_-]{3,64}$'),
  -- Exact origins as browsers send them in the Origin header: scheme and
  -- host (and port), lowercase, no path or trailing slash. A check cannot
  -- loop over an array, so the elements are joined with spaces and matched
  -- by one pattern; elements holding a space or a null (which the join
  -- would split or skip) are refused first.
  allowed_origins text[] not null default '{}'
    constraint ticket_intakes_allowed_origins_format check (
      array_position(allowed_origins, null) is null
      and array_to_string(allowed_origins, '') !~ ' '
      and array_to_string(allowed_origins, ' ') ~ '^(https?://[a-z0-9.:\[\]-]+( |$))*$'
    ),
  default_category varchar(100) not null default 'general'
    constraint ticket_intakes_default_category_not_blank check (btrim(default_category) <> ''),
  allowed_categories text[],
  default_priority public.ticket_priority not null default 'medium',
  allowed_priorities public.ticket_priority[] not null default '{low,medium,high}',
  thank_you_url text
    constraint ticket_intakes_thank_you_url_is_http check (thank_you_url ~ '^https?://'),
  rate_limit_per_ip integer not null default 5
    constraint ticket_intakes_rate_limit_per_ip_positive check (rate_limit_per_ip > 0),
  rate_limit_per_account integer not null default 100
    constraint ticket_intakes_rate_limit_per_account_positive check (rate_limit_per_account > 0),
  rate_limit_window_seconds integer not null default 60
    constraint ticket_intakes_rate_limit_window_seconds_positive check (rate_limit_window_seconds > 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- A submission without a category or priority gets the default, so the
  -- default must be one the intake accepts.
  constraint ticket_intakes_default_category_allowed
    check (allowed_categories is null or default_category = any (allowed_categories)),
  constraint ticket_intakes_default_priority_allowed
    check (default_priority = any (allowed_priorities))
);

comment on table public.ticket_intakes is 'Per-account settings of the public ticket form: its public key, allowed origins, categories, priorities and rate limits.';
comment on column public.ticket_intakes.account_id is 'The account that receives the tickets; at most one intake per account.';
comment on column public.ticket_intakes.enabled is 'When false, the intake refuses submissions as if its key did not exist.';
comment on column public.ticket_intakes.intake_key is 'Public identifier the form sends: 3 to 64 of a-z, 0-9, - and _. Not a secret.';
comment on column public.ticket_intakes.allowed_origins is 'Exact origins (https://acme.example) browsers may submit from; empty means no browser origin is accepted.';
comment on column public.ticket_intakes.default_category is 'Category given to a submission that names none.';
comment on column public.ticket_intakes.allowed_categories is 'Categories a submission may name; null accepts any.';
comment on column public.ticket_intakes.default_priority is 'Priority given to a submission that names none.';
comment on column public.ticket_intakes.allowed_priorities is 'Priorities a submission may name.';
comment on column public.ticket_intakes.thank_you_url is 'Where the browser goes after a form post; null shows the built-in page.';
comment on column public.ticket_intakes.rate_limit_per_ip is 'Submissions accepted per client IP per window.';
comment on column public.ticket_intakes.rate_limit_per_account is 'Submissions accepted for the whole account per window.';
comment on column public.ticket_intakes.rate_limit_window_seconds is 'Length of the fixed rate-limit window, in seconds.';

-- Members read; settings.manage holders write (RLS decides which). No API
-- caller writes the timestamps, nor moves an intake to another account.
revoke all on table public.ticket_intakes from public, anon, authenticated, service_role;
grant select, delete on table public.ticket_intakes to authenticated;
grant insert (
  account_id,
  enabled,
  intake_key,
  allowed_origins,
  default_category,
  allowed_categories,
  default_priority,
  allowed_priorities,
  thank_you_url,
  rate_limit_per_ip,
  rate_limit_per_account,
  rate_limit_window_seconds
) on table public.ticket_intakes to authenticated;
grant update (
  enabled,
  intake_key,
  allowed_origins,
  default_category,
  allowed_categories,
  default_priority,
  allowed_priorities,
  thank_you_url,
  rate_limit_per_ip,
  rate_limit_per_account,
  rate_limit_window_seconds
) on table public.ticket_intakes to authenticated;
grant select, insert, update, delete on table public.ticket_intakes to service_role;

alter table public.ticket_intakes enable row level security;

create policy "Ticket intakes are viewable by members of their account"
  on public.ticket_intakes
  for select
  to authenticated
  using (public.has_role_on_account(account_id));

create policy "Ticket intakes are creatable by settings managers"
  on public.ticket_intakes
  for insert
  to authenticated
  with check (public.has_permission((select auth.uid()), account_id, 'settings.manage'::public.app_permissions));

create policy "Ticket intakes are updatable by settings managers"
  on public.ticket_intakes
  for update
  to authenticated
  using (public.has_permission((select auth.uid()), account_id, 'settings.manage'::public.app_permissions))
  with check (public.has_permission((select auth.uid()), account_id, 'settings.manage'::public.app_permissions));

create policy "Ticket intakes are deletable by settings managers"
  on public.ticket_intakes
  for delete
  to authenticated
  using (public.has_permission((select auth.uid()), account_id, 'settings.manage'::public.app_permissions));

create trigger set_ticket_intakes_timestamps
  before update on public.ticket_intakes
  for each row execute function kit.set_timestamps();
