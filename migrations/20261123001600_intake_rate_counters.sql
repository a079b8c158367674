/*
 * Intake rate counters: fixed-window hit counts for the public intake.
 *
 * public.intake_begin counts one hit per request in two buckets, the client
 * IP on the account ('ip:<account_id>:<ip>') and the account as a whole
 * ('account:<account_id>'), and deletes expired windows as it goes. The
 * table is in kit, which PostgREST does not expose and no API role may use:
 * only intake_begin (security definer) touches it.
 */

/*
 * Table: kit.intake_rate_counters
 */
create table if not exists kit.intake_rate_counters (
  bucket text not null,
  window_start timestamptz not null,
  expires_at timestamptz not null,
  hits integer not null default 0
    constraint intake_rate_counters_hits_not_negative check (hits >= 0),
  primary key (bucket, window_start),
  constraint intake_rate_counters_window_not_empty check (expires_at > window_start)
);

comment on table kit.intake_rate_counters is 'Hits per rate-limit bucket and fixed window for the public ticket intake; written only by public.intake_begin.';
comment on column kit.intake_rate_counters.bucket is 'What is counted: ip:<account_id>:<client ip> or account:<account_id>.';
comment on column kit.intake_rate_counters.window_start is 'Start of the fixed window (a multiple of the intake''s window length since the epoch).';
comment on column kit.intake_rate_counters.expires_at is 'End of the window; the row is deleted some time after.';
comment on column kit.intake_rate_counters.hits is 'Requests counted in the bucket during the window.';

-- Serves the clean-up of expired windows.
create index if not exists ix_intake_rate_counters_expires_at on kit.intake_rate_counters (expires_at);

revoke all on table kit.intake_rate_counters from public, anon, authenticated, service_role;

-- No policy and no grant: only the table's owner, through intake_begin,
-- reads or writes it.
alter table kit.intake_rate_counters enable row level security;
