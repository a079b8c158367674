/*
 * Function: public.reserve_email(p_recipients, p_subject, p_content,
 *   p_mail_type, p_idempotency_key, p_request_hash, p_template_id)
 *
 * The send-email Worker calls this with the user's own JWT before it calls
 * the provider. It acts on the signed-in user (auth.uid()) and nobody else:
 * there is no user parameter, and the price is computed here
 * (public.email_price), so a caller can neither charge someone else nor
 * choose what they pay. In one transaction:
 *
 *   - no signed-in user raises http_401; an anonymous sign-in (the JWT's
 *     is_anonymous claim, or auth.users.is_anonymous) raises http_403:
 *     they are signed in, but sending takes a real account;
 *   - the sender's profile row is locked (for update), so one user's
 *     reservations run one at a time: concurrent sends can never spend the
 *     same credits twice, and a concurrent retry with the same key waits
 *     and then finds the mail the first one reserved;
 *   - a mail with this idempotency key already exists: with the same
 *     p_request_hash it is returned with "replayed": true and nothing is
 *     charged; with another, http_422;
 *   - otherwise the mail is priced, http_402 when the balance is short,
 *     else the credits are taken (ledger reason email_reserve, reference
 *     the mail id) and the mail is logged as 'reserved'.
 *
 * Returns {"mail_id", "status", "credits_used", "credits_remaining",
 * "replayed"}; credits_remaining is the balance after this call. Malformed
 * fields are refused by user_mails' checks (a 422 through PostgREST) and
 * roll the charge back with them; the Worker validates first, so only
 * direct callers meet those.
 *
 * SECURITY DEFINER because users may neither write profiles.credits nor
 * the ledger nor user_mails; search_path is pinned, every name qualified,
 * and only authenticated may execute it (service_role has no user to act
 * for). p_template_id comes last because it has a default: PostgREST calls
 * by name, so the order is only what SQL callers see.
 */
create or replace function public.reserve_email(
  p_recipients text[],
  p_subject text,
  p_content text,
  p_mail_type text,
  p_idempotency_key text,
  p_request_hash text,
  p_template_id text default null
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

  price := public.email_price(p_recipients, p_content, p_mail_type);

  if balance < price then
    raise exception 'http_402: Not enough credits: this email costs %, you have %', price, balance;
  end if;

  insert into public.user_mails (
    id,
    user_id,
    recipients,
    subject,
    content,
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
    p_content,
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

comment on function public.reserve_email(text[], text, text, text, text, text, text) is 'Send-email step 1, as the signed-in user: prices the mail, takes the credits and logs it as reserved, once per idempotency key (a repeat returns the first mail). authenticated only.';

revoke all on function public.reserve_email(text[], text, text, text, text, text, text) from public, anon, authenticated, service_role;
grant execute on function public.reserve_email(text[], text, text, text, text, text, text) to authenticated;
