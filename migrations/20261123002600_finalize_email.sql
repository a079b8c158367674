/*
 * Function: public.finalize_email(p_mail_id, p_provider,
 *   p_provider_message_id, p_error)
 *
 * The send-email Worker calls this with the service key once the provider
 * answered (or failed to). Users cannot call it: otherwise anyone could
 * mark their own delivered mail failed and get the credits back.
 *
 * For a 'reserved' mail:
 *
 *   - without p_error, the provider accepted it: 'sent', with the provider,
 *     its message id and sent_at;
 *   - with p_error, it was not sent: 'refunded', with the error, and the
 *     mail's credits go back to the sender (ledger reason email_refund,
 *     reference the mail id).
 *
 * The mail row is locked first (for update), so of two concurrent calls
 * the second waits and then sees the mail finalized. A mail already sent
 * or refunded is left exactly as it is, whatever this call says, and its
 * current state returned: a refund happens once, and the unique
 * (reason, reference) on the ledger would refuse a second one anyway. An
 * unknown mail raises http_404, a missing provider http_422.
 *
 * Returns {"mail_id", "status", "credits_used", "credits_remaining"},
 * credits_remaining being the sender's balance after the call.
 *
 * SECURITY DEFINER because service_role may only read user_mails, the
 * ledger and profiles.credits; search_path is pinned, every name
 * qualified, and only service_role may execute it. Lock order is mail,
 * then profile; reserve_email locks only the profile and never a mail, so
 * the two cannot deadlock.
 */
create or replace function public.finalize_email(
  p_mail_id uuid,
  p_provider text,
  p_provider_message_id text default null,
  p_error text default null
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  mail public.user_mails;
  balance integer;
begin
  if nullif(btrim(p_provider), '') is null then
    raise exception 'http_422: A provider is required';
  end if;

  select *
  into mail
  from public.user_mails user_mail
  where user_mail.id = p_mail_id
  for update;

  if not found then
    raise exception 'http_404: No such email';
  end if;

  if mail.status = 'reserved' then
    if p_error is null then
      update public.user_mails user_mail
      set status = 'sent',
          provider = btrim(p_provider),
          provider_message_id = nullif(btrim(p_provider_message_id), ''),
          sent_at = now()
      where user_mail.id = mail.id
      returning * into mail;
    else
      update public.user_mails user_mail
      set status = 'refunded',
          provider = btrim(p_provider),
          provider_message_id = nullif(btrim(p_provider_message_id), ''),
          error = left(coalesce(nullif(btrim(p_error), ''), 'unknown error'), 2000)
      where user_mail.id = mail.id
      returning * into mail;

      perform kit.post_credit_transaction(mail.user_id, mail.credits_used, 'email_refund', mail.id::text);
    end if;
  end if;

  select profile.credits
  into balance
  from public.profiles profile
  where profile.id = mail.user_id;

  return jsonb_build_object(
    'mail_id', mail.id,
    'status', mail.status,
    'credits_used', mail.credits_used,
    'credits_remaining', balance
  );
end;
$$;

comment on function public.finalize_email(uuid, text, text, text) is 'Send-email step 2, as the service: marks a reserved mail sent, or refunded with its credits returned exactly once; a finalized mail is returned unchanged. service_role only.';

revoke all on function public.finalize_email(uuid, text, text, text) from public, anon, authenticated, service_role;
grant execute on function public.finalize_email(uuid, text, text, text) to service_role;
