/*
 * User mails: every email a user sends through the product, and what it
 * cost.
 *
 * A mail is written by public.reserve_email as 'reserved', with its price
 * already taken from the sender's balance, before the provider is called;
 * public.finalize_email then marks it 'sent', or 'refunded' with the
 * credits given back. Those are the only states: a failed send is always
 * refunded in the same transaction that records the failure, so there is
 * no failed-but-charged state to represent. A mail stuck in 'reserved'
 * means the send's outcome was never recorded (the Worker died, or
 * recording failed after a send) and needs reconciling.
 *
 * (user_id, idempotency_key) is unique: a retried request finds the mail it
 * already reserved instead of paying again, and request_hash tells a retry
 * from a different email reusing the key.
 *
 * Senders read their own mails. Nobody writes them through the API: the two
 * functions do, as the table's owner, and a trigger keeps a finalized mail
 * and what was charged for it from changing afterwards.
 */

/*
 * Table: public.user_mails
 *
 * All recipients are kept, in order, in `recipients` (the price is per
 * recipient); "mails to x@example.com" is `recipients @> '{x@example.com}'`,
 * served by a GIN index. A check cannot loop over an array, so elements are
 * joined with spaces and matched by one pattern; elements holding a space
 * or a null (which the join would split or skip) are refused first, and an
 * empty element leaves two spaces the pattern does not match.
 */
create table if not exists public.user_mails (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.profiles (id) on delete cascade,
  recipients text[] not null
    constraint user_mails_recipients_format check (
      cardinality(recipients) between 1 and 50
      and array_position(recipients, null) is null
      and array_to_string(recipients, '') !~ '[[:space:]]'
      and octet_length(array_to_string(recipients, ' ')) <= 50 * 255
      and array_to_string(recipients, ' ') ~ '^[^@[:space:]]+@[^@[:space:]]+( [^@[:space:]]+@[^@[:space:]]+)*$'
    ),
  subject text not null
    constraint user_mails_subject_format check (
      char_length(subject) between 1 and 998
      and btrim(subject) <> ''
      and subject !~ '[[:cntrl:]]'
    ),
  content text not null
    constraint user_mails_content_size check (octet_length(content) <= 1048576),
  mail_type text not null
    constraint user_mails_mail_type_known check (mail_type in ('custom', 'template')),
  template_id text
    constraint user_mails_template_id_format check (template_id ~ '^[A-Za-z0-9._-]{1,100}$'),
  credits_used integer not null
    constraint user_mails_credits_used_positive check (credits_used > 0),
  status text not null default 'reserved'
    constraint user_mails_status_known check (status in ('reserved', 'sent', 'refunded')),
  provider text
    constraint user_mails_provider_format check (char_length(provider) between 1 and 50),
  provider_message_id text
    constraint user_mails_provider_message_id_length check (char_length(provider_message_id) between 1 and 255),
  idempotency_key text not null
    constraint user_mails_idempotency_key_length check (char_length(idempotency_key) between 1 and 255),
  request_hash text not null
    constraint user_mails_request_hash_length check (char_length(request_hash) between 1 and 255),
  error text
    constraint user_mails_error_length check (char_length(error) <= 2000),
  created_at timestamptz not null default now(),
  sent_at timestamptz,
  updated_at timestamptz not null default now(),
  constraint user_mails_template_id_iff_template check ((mail_type = 'template') = (template_id is not null)),
  constraint user_mails_sent_at_iff_sent check ((status = 'sent') = (sent_at is not null)),
  constraint user_mails_sent_has_provider check (status <> 'sent' or provider is not null),
  constraint user_mails_refunded_has_error check (status <> 'refunded' or error is not null),
  constraint user_mails_user_id_idempotency_key_key unique (user_id, idempotency_key)
);

comment on table public.user_mails is 'Emails users sent through the product: reserved (paid, being sent), sent, or refunded. Written only by reserve_email and finalize_email; senders read their own.';
comment on column public.user_mails.user_id is 'The sender, who paid for the mail.';
comment on column public.user_mails.recipients is 'Every recipient address, in the order given; 1 to 50.';
comment on column public.user_mails.subject is 'Subject line: one line, 1 to 998 characters.';
comment on column public.user_mails.content is 'The text (or HTML) body as sent, or for a template the variables as JSON; at most 1 MiB. Its size is part of the price.';
comment on column public.user_mails.mail_type is 'custom or template; priced by public.email_prices.';
comment on column public.user_mails.template_id is 'The provider''s template id or alias, for template mails only.';
comment on column public.user_mails.credits_used is 'What the mail cost when reserved; refunded in full if it was not sent.';
comment on column public.user_mails.status is 'reserved (paid, outcome not yet recorded), sent, or refunded (not sent, credits returned).';
comment on column public.user_mails.provider is 'The email provider that handled it, e.g. resend or postmark.';
comment on column public.user_mails.provider_message_id is 'The provider''s id for the sent message.';
comment on column public.user_mails.idempotency_key is 'The client''s Idempotency-Key (or one the server made up); unique per sender.';
comment on column public.user_mails.request_hash is 'Hash of the request, to tell a retry from a different email reusing the key.';
comment on column public.user_mails.error is 'Why the send failed, for refunded mails.';
comment on column public.user_mails.created_at is 'When the mail was reserved.';
comment on column public.user_mails.sent_at is 'When the provider accepted it; null unless sent.';

-- A sender's history, newest first, whatever the status (sent_at is null
-- for reserved and refunded mails, so it cannot order them). The unique
-- constraint also serves lookups by sender. mail_type has two values, too
-- few for an index of its own to help; filtering by it happens within a
-- sender's mails, which this index narrows first.
create index if not exists ix_user_mails_user_id_created_at
  on public.user_mails (user_id, created_at desc);
create index if not exists ix_user_mails_recipients
  on public.user_mails using gin (recipients);

revoke all on table public.user_mails from public, anon, authenticated, service_role;
grant select on table public.user_mails to authenticated, service_role;

alter table public.user_mails enable row level security;

create policy "Mails are viewable by their senders"
  on public.user_mails
  for select
  to authenticated
  using (user_id = (select auth.uid()));

create trigger set_user_mails_timestamps
  before update on public.user_mails
  for each row execute function kit.set_timestamps();

/*
 * Function: kit.guard_user_mail_update()
 *
 * BEFORE UPDATE trigger: only a reserved mail changes, and only in its
 * outcome (status, provider, provider_message_id, error, sent_at). What
 * was sent, by whom, and what it cost stay as reserved, and a sent or
 * refunded mail stays as it is, so no later write can turn a sent mail
 * into a refund or charge a different price than the ledger recorded.
 */
create or replace function kit.guard_user_mail_update()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if old.status <> 'reserved' then
    raise exception 'a % mail cannot change', old.status
      using errcode = 'check_violation',
            detail = format('mail %s is already finalized', old.id),
            table = 'user_mails',
            schema = 'public';
  end if;

  if (new.id, new.user_id, new.recipients, new.subject, new.content, new.mail_type, new.template_id,
      new.credits_used, new.idempotency_key, new.request_hash)
     is distinct from
     (old.id, old.user_id, old.recipients, old.subject, old.content, old.mail_type, old.template_id,
      old.credits_used, old.idempotency_key, old.request_hash) then
    raise exception 'only the outcome of a reserved mail can change'
      using errcode = 'check_violation',
            detail = 'status, provider, provider_message_id, error and sent_at may change; the rest is fixed at reservation.',
            table = 'user_mails',
            schema = 'public';
  end if;

  return new;
end;
$$;

comment on function kit.guard_user_mail_update() is 'BEFORE UPDATE trigger on user_mails: only a reserved mail''s outcome may change; finalized mails and what was charged are fixed.';

revoke all on function kit.guard_user_mail_update() from public, anon, authenticated, service_role;

create trigger guard_user_mail_update
  before update on public.user_mails
  for each row execute function kit.guard_user_mail_update();
