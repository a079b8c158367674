/*
 * Table: public.billing_events
 *
 * The ledger of provider events: one row per (provider, event id), however
 * often it is delivered. public.apply_billing_event writes the row and
 * applies the event in one transaction, setting processed_at only when the
 * event was applied (or found stale or ignored); a failure leaves
 * processed_at null with the error, so a redelivery tries again and a
 * success is never applied twice.
 *
 * service_role only: payloads name customers, and nobody else needs it.
 */
create table if not exists public.billing_events (
  id bigint generated always as identity primary key,
  provider public.billing_provider not null,
  event_id text not null
    constraint billing_events_event_id_format check (char_length(event_id) between 1 and 255),
  type text not null
    constraint billing_events_type_format check (char_length(type) between 1 and 255),
  occurred_at timestamptz not null,
  received_at timestamptz not null default now(),
  processed_at timestamptz,
  outcome public.billing_event_outcome,
  error text,
  attempts integer not null default 1,
  constraint billing_events_provider_event_id_key unique (provider, event_id),
  constraint billing_events_processed_has_outcome check (
    processed_at is null or outcome in ('applied', 'ignored', 'stale')
  )
);

comment on table public.billing_events is 'Every provider event received, once per (provider, event_id): what it was, when, and what applying it did. service_role only.';
comment on column public.billing_events.occurred_at is 'When the provider says the event happened.';
comment on column public.billing_events.processed_at is 'When it was applied, found stale or ignored; null while it has not been (not yet, or it failed).';
comment on column public.billing_events.error is 'Why the last attempt failed; null once processed.';
comment on column public.billing_events.attempts is 'How many deliveries tried to apply it.';

-- Failed events, for an operator's "what is stuck" query.
create index if not exists ix_billing_events_unprocessed
  on public.billing_events (received_at) where processed_at is null;

revoke all on table public.billing_events from public, anon, authenticated, service_role;
-- The identity's sequence needs no grant (inserting is enough); Supabase's
-- default privileges would give it to every API role.
revoke all on sequence public.billing_events_id_seq from public, anon, authenticated, service_role;
grant select, insert, update on table public.billing_events to service_role;

alter table public.billing_events enable row level security;
