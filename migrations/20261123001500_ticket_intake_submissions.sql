/*
 * Ticket intake submissions: the intake's private bookkeeping.
 *
 * One row per ticket the public form created, kept so that the intake can
 * answer a retried request with the ticket it already created
 * (idempotency_key with the hash of the request it came with) and never
 * accept the same captcha token twice. It says where tickets came from
 * (client_ip), so no API role but service_role sees it; members read the
 * tickets themselves.
 */

/*
 * Table: public.ticket_intake_submissions
 */
create table if not exists public.ticket_intake_submissions (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null references public.accounts (id) on delete cascade,
  ticket_id uuid not null references public.tickets (id) on delete cascade,
  idempotency_key text
    constraint ticket_intake_submissions_idempotency_key_length
      check (char_length(idempotency_key) between 1 and 255),
  request_hash text,
  captcha_token_hash text not null
    constraint ticket_intake_submissions_captcha_token_hash_key unique
    constraint ticket_intake_submissions_captcha_token_hash_format
      check (captcha_token_hash ~ '^[0-9a-f]{64}$'),
  client_ip text,
  created_at timestamptz not null default now(),
  -- Keys are the client's, so they are only unique within an account.
  constraint ticket_intake_submissions_account_id_idempotency_key_key
    unique (account_id, idempotency_key)
);

comment on table public.ticket_intake_submissions is 'Private bookkeeping of the public ticket intake: one row per created ticket, for idempotent retries and one-time captcha tokens. service_role only.';
comment on column public.ticket_intake_submissions.account_id is 'The account whose intake took the submission.';
comment on column public.ticket_intake_submissions.ticket_id is 'The ticket the submission created.';
comment on column public.ticket_intake_submissions.idempotency_key is 'The client''s Idempotency-Key header, if it sent one; unique per account.';
comment on column public.ticket_intake_submissions.request_hash is 'Hash of the submitted request, to tell a retry from a different submission reusing a key.';
comment on column public.ticket_intake_submissions.captcha_token_hash is 'SHA-256 (lowercase hex) of the captcha token the submission passed; a token is never accepted twice.';
comment on column public.ticket_intake_submissions.client_ip is 'The submitting client''s IP address, as the edge saw it.';

-- The unique constraints index account_id and captcha_token_hash; this one
-- serves the cascade from tickets.
create index if not exists ix_ticket_intake_submissions_ticket_id on public.ticket_intake_submissions (ticket_id);

-- A record of what happened: written once, removed only when its ticket or
-- account goes (or by retention clean-up), never edited.
revoke all on table public.ticket_intake_submissions from public, anon, authenticated, service_role;
grant select, insert, delete on table public.ticket_intake_submissions to service_role;

-- No policy: with RLS on, no signed-in user reads a row even if a grant
-- were added by mistake. service_role bypasses RLS.
alter table public.ticket_intake_submissions enable row level security;
