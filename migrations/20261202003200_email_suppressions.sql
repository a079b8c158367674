/*
 * Email suppressions: addresses that hard-bounced or complained are not
 * sent to again, and cost the sender nothing.
 *
 * A permanent bounce or a spam complaint heard through send-email's
 * webhooks (public.email_events) puts the recipient on
 * public.email_suppressions, one list per project (the sending domain's
 * reputation is the project's, whoever sent). public.reserve_email then
 * refuses a new mail to a suppressed address before anything is charged,
 * as a field error on `to[<index>]`. An operator lifts a suppression by
 * deleting its row (SQL or the service key); senders cannot read the list
 * (it holds other people's addresses), only learn that one of their
 * recipients is on it when they send.
 */

/*
 * Table: public.email_suppressions
 */
create table if not exists public.email_suppressions (
  address text primary key
    constraint email_suppressions_address_format check (
      char_length(address) between 3 and 320 and address = lower(btrim(address)) and address like '%_@_%'),
  reason text not null
    constraint email_suppressions_reason_known check (reason in ('hard_bounce', 'complaint', 'manual')),
  provider text
    constraint email_suppressions_provider_format check (char_length(provider) between 1 and 50),
  event_id text
    constraint email_suppressions_event_id_length check (char_length(event_id) between 1 and 255),
  created_at timestamptz not null default now()
);

comment on table public.email_suppressions is 'Recipients not sent to again (hard bounces, spam complaints, an operator''s choice), per project; reserve_email refuses mail to them before charging. Written by the delivery webhooks (kit.suppress_after_email_event) and by operators; service_role reads and deletes.';
comment on column public.email_suppressions.address is 'The address, lower-cased and trimmed.';
comment on column public.email_suppressions.reason is 'hard_bounce, complaint, or manual.';

revoke all on table public.email_suppressions from public, anon, authenticated, service_role;
grant select, insert, delete on table public.email_suppressions to service_role;

-- No policy: no API role but service_role (which bypasses RLS) may touch it.
alter table public.email_suppressions enable row level security;

/*
 * Function: kit.suppress_after_email_event()
 *
 * AFTER INSERT trigger on email_events: a permanent bounce or a complaint
 * with a known recipient suppresses that address (the first reason stays).
 * Runs inside record_email_event (as its owner), so the event and its
 * suppression are recorded together, once.
 */
create or replace function kit.suppress_after_email_event()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.recipient is not null and new.recipient like '%_@_%'
     and (new.type = 'complained' or (new.type = 'bounced' and new.permanent)) then
    insert into public.email_suppressions (address, reason, provider, event_id)
    values (lower(btrim(new.recipient)), case new.type when 'complained' then 'complaint' else 'hard_bounce' end,
            new.provider, new.event_id)
    on conflict (address) do nothing;
  end if;
  return null;
end;
$$;

comment on function kit.suppress_after_email_event() is 'AFTER INSERT trigger on email_events: hard bounces and complaints put the recipient on email_suppressions.';

revoke all on function kit.suppress_after_email_event() from public, anon, authenticated, service_role;

create trigger suppress_after_email_event
  after insert on public.email_events
  for each row execute function kit.suppress_after_email_event();

/*
 * Function: public.reserve_email(...)
 *
 * Replaces 20261201003500's, unchanged but for one step: before the
 * balance pre-check, a new mail (not a retry of an existing key) to any
 * suppressed recipient is refused with http_422 listing each as
 * `to[<index>]: ...`, so nothing is charged nor sent. See 20261201003500
 * for the rest of the contract.
 */
create or replace function public.reserve_email(
  p_recipients text[],
  p_subject text,
  p_content text,
  p_mail_type text,
  p_idempotency_key text,
  p_request_hash text,
  p_template_id text default null,
  p_html text default null
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  sender_id uuid := auth.uid();
  balance integer;
  previous public.user_mails;
  custom_allowed boolean;
  mail_limit integer;
  recipient_limit integer;
  recipient_count integer := coalesce(cardinality(p_recipients), 0);
  recent_mails integer;
  recent_recipients integer;
  retry_at timestamptz;
  price integer;
  new_mail_id uuid := gen_random_uuid();
  suppressed text;
begin
  if sender_id is null then
    raise exception 'http_401: Sign in to send email';
  end if;

  if coalesce(auth.jwt() ->> 'is_anonymous', 'false') = 'true'
     or exists (select 1 from auth.users auth_user where auth_user.id = sender_id and auth_user.is_anonymous) then
    raise exception 'http_403: Anonymous users cannot send email; sign up with an email address first';
  end if;

  if nullif(btrim(p_idempotency_key), '') is null or nullif(btrim(p_request_hash), '') is null then
    raise exception 'http_422: An idempotency key and a request hash are required';
  end if;

  -- Suppressed recipients (hard-bounced or complained, per project) are
  -- refused before anything else about a new mail, and before any credit
  -- is taken: a field error per address, `to[<index>]: <why>`, which
  -- send-email turns into the 422's `errors`. A retry of an existing mail
  -- replays below instead: it was accepted before the suppression.
  if not exists (
    select 1 from public.user_mails mail
    where mail.user_id = sender_id and mail.idempotency_key = p_idempotency_key
  ) then
    select string_agg(format('to[%s]: this address is suppressed (it %s), so no mail is sent to it', r.ordinality - 1,
                             case suppression.reason when 'complaint' then 'marked our mail as spam'
                                                     else 'hard-bounced' end),
                      '; ' order by r.ordinality)
    into suppressed
    from unnest(p_recipients) with ordinality r (address, ordinality)
    join public.email_suppressions suppression on suppression.address = lower(btrim(r.address));
    if suppressed is not null then
      raise exception 'http_422: %', suppressed;
    end if;
  end if;

  -- A burst of one sender's sends queues on the profile lock below, each
  -- holding one of PostgREST's few database connections while it waits;
  -- past PostgREST's pool timeout that is a 503 (PGRST003) for everyone,
  -- other users included. So a mail that cannot be paid for is refused
  -- first, without the lock: the committed balance a moment ago, which is
  -- what the locked check would have seen then. A retry of an existing
  -- mail skips this (it replays below), and the locked check still decides
  -- every mail that passes.
  if not exists (
    select 1 from public.user_mails mail
    where mail.user_id = sender_id and mail.idempotency_key = p_idempotency_key
  ) then
    select profile.credits into balance from public.profiles profile where profile.id = sender_id;
    price := public.email_price(p_recipients, p_content, p_mail_type, p_html);
    if balance < price then
      raise exception 'http_402: Not enough credits: this email costs %, you have %', price, balance;
    end if;
  end if;

  select profile.credits
  into balance
  from public.profiles profile
  where profile.id = sender_id
  for update;

  if not found then
    -- A valid token for a user deleted since it was issued.
    raise exception 'http_401: Sign in to send email';
  end if;

  select *
  into previous
  from public.user_mails mail
  where mail.user_id = sender_id
    and mail.idempotency_key = p_idempotency_key;

  if found then
    if previous.request_hash is distinct from p_request_hash then
      raise exception 'http_422: Idempotency-Key was already used with a different email';
    end if;
    return jsonb_build_object(
      'mail_id', previous.id,
      'status', previous.status,
      'credits_used', previous.credits_used,
      'credits_remaining', balance,
      'replayed', true
    );
  end if;

  -- The operator's policy, with this sender's exceptions.
  select coalesce(sender_exception.custom_content_allowed, settings.custom_content_allowed),
         coalesce(sender_exception.daily_mail_limit, settings.daily_mail_limit),
         coalesce(sender_exception.daily_recipient_limit, settings.daily_recipient_limit)
  into custom_allowed, mail_limit, recipient_limit
  from public.email_settings settings
  left join public.email_sender_settings sender_exception on sender_exception.user_id = sender_id;

  if not found then
    -- Nobody can delete the row through the API; fail closed if the owner did.
    raise exception 'public.email_settings has no row: no mail is sent until it is restored';
  end if;

  if not custom_allowed then
    if p_mail_type = 'custom' then
      raise exception 'http_403: This service sends only its own templates: send a template_id with variables instead of subject, html and text';
    end if;
    if p_subject is not null then
      raise exception 'http_403: The subject comes from the template: leave subject out';
    end if;
  end if;

  if mail_limit = 0 or recipient_limit = 0 then
    raise exception 'http_403: Sending email is turned off for this account';
  end if;

  if recipient_count > recipient_limit then
    raise exception 'http_422: This email has % recipients; at most % may be sent to in 24 hours',
      recipient_count, recipient_limit;
  end if;

  -- Served by ix_user_mails_user_id_created_at; exact, since every
  -- reservation of this sender waits for the profile lock held here.
  select count(*)::integer, coalesce(sum(cardinality(mail.recipients)), 0)::integer
  into recent_mails, recent_recipients
  from public.user_mails mail
  where mail.user_id = sender_id
    and mail.created_at > now() - interval '24 hours'
    and mail.status <> 'refunded';

  if recent_mails + 1 > mail_limit or recent_recipients + recipient_count > recipient_limit then
    -- The oldest mail whose leaving the window, with all older ones, makes
    -- room for this one. One exists: once all have left, this mail fits.
    select window_mail.created_at + interval '24 hours'
    into retry_at
    from (
      select mail.created_at,
             count(*) over oldest_first as mails_leaving,
             sum(cardinality(mail.recipients)) over oldest_first as recipients_leaving
      from public.user_mails mail
      where mail.user_id = sender_id
        and mail.created_at > now() - interval '24 hours'
        and mail.status <> 'refunded'
      window oldest_first as (order by mail.created_at, mail.id)
    ) window_mail
    where recent_mails - window_mail.mails_leaving + 1 <= mail_limit
      and recent_recipients - window_mail.recipients_leaving + recipient_count <= recipient_limit
    order by window_mail.created_at
    limit 1;

    raise exception 'http_429: Daily sending limit reached: at most % emails and % recipients in 24 hours. Try again after %',
      mail_limit, recipient_limit,
      to_char(date_trunc('second', retry_at + interval '999999 microseconds') at time zone 'UTC',
              'YYYY-MM-DD"T"HH24:MI:SS"Z"');
  end if;

  if p_mail_type = 'custom' and coalesce(p_content, '') = '' and coalesce(p_html, '') = '' then
    raise exception 'http_422: A custom email needs html or text';
  end if;

  price := public.email_price(p_recipients, p_content, p_mail_type, p_html);

  if balance < price then
    raise exception 'http_402: Not enough credits: this email costs %, you have %', price, balance;
  end if;

  insert into public.user_mails (
    id,
    user_id,
    recipients,
    subject,
    content,
    html,
    mail_type,
    template_id,
    credits_used,
    status,
    idempotency_key,
    request_hash
  )
  values (
    new_mail_id,
    sender_id,
    p_recipients,
    p_subject,
    coalesce(p_content, ''),
    p_html,
    p_mail_type,
    p_template_id,
    price,
    'reserved',
    p_idempotency_key,
    p_request_hash
  );

  balance := kit.post_credit_transaction(sender_id, -price, 'email_reserve', new_mail_id::text);

  return jsonb_build_object(
    'mail_id', new_mail_id,
    'status', 'reserved',
    'credits_used', price,
    'credits_remaining', balance,
    'replayed', false
  );
end;
$$;

comment on function public.reserve_email(text[], text, text, text, text, text, text, text) is 'Send-email step 1, as the signed-in user: refuses suppressed recipients (422 per to[i]), enforces the sending policy (templates only unless allowed, daily limits), prices what is sent (text or variables, plus html), takes the credits and logs the mail as reserved, once per idempotency key (a repeat returns the first mail). authenticated only.';

revoke all on function public.reserve_email(text[], text, text, text, text, text, text, text) from public, anon, authenticated, service_role;
grant execute on function public.reserve_email(text[], text, text, text, text, text, text, text) to authenticated;
