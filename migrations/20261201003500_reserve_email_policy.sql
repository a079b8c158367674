/*
 * Function: public.reserve_email(p_recipients, p_subject, p_content,
 *   p_mail_type, p_idempotency_key, p_request_hash, p_template_id, p_html)
 *
 * Replaces the version without p_html. As before, the send-email Worker
 * calls it with the user's own JWT before it calls the provider; it acts
 * on auth.uid() only (there is no user parameter) and prices the mail
 * itself, so a caller can neither charge someone else nor choose what they
 * pay. What is new:
 *
 *   - p_html, the HTML body, is logged (user_mails.html) and priced with
 *     p_content (the text body, or a template's variables as JSON), so the
 *     price is that of everything sent;
 *   - the operator's sending policy (public.email_settings, with the
 *     sender's exceptions from public.email_sender_settings) is enforced
 *     here, where the mails are counted and before anything is charged:
 *       * a custom mail (the sender's own subject, html and text), or a
 *         subject on a template mail, unless raw content is allowed:
 *         http_403;
 *       * a daily limit of 0 (mails or recipients): http_403, sending is
 *         off for this sender;
 *       * a mail with more recipients than the daily recipient limit:
 *         http_422, since waiting would not help;
 *       * the sender's mails and recipients over the last 24 hours
 *         (counting every mail but refunded ones: unknown ones may have
 *         been sent), plus this one, over either limit: http_429, naming
 *         the first time (UTC, rounded up to the second) at which enough
 *         of those mails have left the window for this one to fit;
 *   - a custom mail needs html or text: http_422.
 *
 * Unchanged, in order: no signed-in user is http_401, an anonymous sign-in
 * http_403. New: a mail the sender cannot pay for is http_402 before it
 * queues on the profile lock (read without it: see the comment there; seen
 * under load, e2e load::two_thousand_sends_for_three_hundred_credits_send_
 * three_hundred on a busy machine, where the queue held every PostgREST
 * pool connection and later sends got 503s, other users' too), so paying
 * is checked before the policy's 403/429. Then, as before: the sender's
 * profile row is locked (for update), so one
 * sender's reservations run one at a time: concurrent sends can neither
 * spend the same credits twice nor together pass the daily limit; a mail
 * with this idempotency key already exists: with the same p_request_hash it
 * is returned with "replayed": true, before any policy check (a retry of a
 * reserved mail is not a new mail), with another http_422; otherwise the
 * policy, then the price, http_402 when the balance is short, else the
 * credits are taken (ledger reason email_reserve, reference the mail id)
 * and the mail is logged as 'reserved'.
 *
 * Returns {"mail_id", "status", "credits_used", "credits_remaining",
 * "replayed"}. Malformed fields are refused by user_mails' checks (a 422
 * through PostgREST) and roll the charge back with them.
 *
 * SECURITY DEFINER because users may neither write profiles.credits nor
 * the ledger nor user_mails; search_path is pinned, every name qualified,
 * and only authenticated may execute it. p_template_id and p_html have
 * defaults; PostgREST calls by name.
 */
drop function if exists public.reserve_email(text[], text, text, text, text, text, text);

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

comment on function public.reserve_email(text[], text, text, text, text, text, text, text) is 'Send-email step 1, as the signed-in user: enforces the sending policy (templates only unless allowed, daily limits), prices what is sent (text or variables, plus html), takes the credits and logs the mail as reserved, once per idempotency key (a repeat returns the first mail). authenticated only.';

revoke all on function public.reserve_email(text[], text, text, text, text, text, text, text) from public, anon, authenticated, service_role;
grant execute on function public.reserve_email(text[], text, text, text, text, text, text, text) to authenticated;
