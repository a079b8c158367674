/*
 * Function: public.finalize_email(p_mail_id, p_provider, p_outcome,
 *   p_provider_message_id, p_error)
 *
 * Replaces finalize_email(p_mail_id, p_provider, p_provider_message_id,
 * p_error), which refunded every mail reported with an error. Many errors
 * do not mean "not sent": after a timeout, a 5xx, or a partial acceptance,
 * the provider may have sent the mail, and refunding it handed out free
 * sends. The caller now names the outcome:
 *
 *   - 'sent': the provider accepted it: sent, with the provider, its message
 *     id and sent_at;
 *   - 'refunded': the provider certainly did not send it (it refused the
 *     message or our credentials before sending, or the connection was
 *     refused): the credits go back (ledger reason email_refund, reference
 *     the mail id) and p_error is kept;
 *   - 'unknown': it may have been sent: the credits stay taken, p_error
 *     says why, and the mail waits for a reconciler (which settles it by
 *     calling this function again with 'sent' or 'refunded').
 *
 * Transitions: reserved -> sent | refunded | unknown; unknown -> sent |
 * refunded; anything else leaves the mail exactly as it is and answers its
 * current state (a refund happens once; unique (reason, reference) on the
 * ledger would refuse a second anyway). An unknown mail settled as sent
 * keeps the error that made it unknown. A missing p_error is recorded as
 * 'no reason given'. An unknown mail raises http_404, a missing provider or
 * an outcome other than the three http_422.
 *
 * Returns {"mail_id", "status", "credits_used", "credits_remaining"}.
 *
 * The mail row is locked first (for update), so of two concurrent calls the
 * second waits and then sees the first's outcome. SECURITY DEFINER because
 * service_role may only read user_mails, the ledger and profiles.credits;
 * search_path is pinned, every name qualified, and only service_role may
 * execute it (a user who could call it would refund their own sent mail).
 * Lock order is mail, then profile; reserve_email locks only the profile and
 * never a mail, so the two cannot deadlock.
 */
drop function if exists public.finalize_email(uuid, text, text, text);

create or replace function public.finalize_email(
  p_mail_id uuid,
  p_provider text,
  p_outcome text,
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
  reason text := left(coalesce(nullif(btrim(p_error), ''), 'no reason given'), 2000);
begin
  if nullif(btrim(p_provider), '') is null then
    raise exception 'http_422: A provider is required';
  end if;

  if p_outcome is null or p_outcome not in ('sent', 'refunded', 'unknown') then
    raise exception 'http_422: The outcome must be sent, refunded or unknown';
  end if;

  select *
  into mail
  from public.user_mails user_mail
  where user_mail.id = p_mail_id
  for update;

  if not found then
    raise exception 'http_404: No such email';
  end if;

  if mail.status = 'reserved' or (mail.status = 'unknown' and p_outcome <> 'unknown') then
    case p_outcome
      when 'sent' then
        update public.user_mails user_mail
        set status = 'sent',
            provider = btrim(p_provider),
            provider_message_id = coalesce(nullif(btrim(p_provider_message_id), ''), mail.provider_message_id),
            sent_at = now()
        where user_mail.id = mail.id
        returning * into mail;
      when 'refunded' then
        update public.user_mails user_mail
        set status = 'refunded',
            provider = btrim(p_provider),
            provider_message_id = coalesce(nullif(btrim(p_provider_message_id), ''), mail.provider_message_id),
            error = reason
        where user_mail.id = mail.id
        returning * into mail;

        perform kit.post_credit_transaction(mail.user_id, mail.credits_used, 'email_refund', mail.id::text);
      else
        update public.user_mails user_mail
        set status = 'unknown',
            provider = btrim(p_provider),
            provider_message_id = nullif(btrim(p_provider_message_id), ''),
            error = reason
        where user_mail.id = mail.id
        returning * into mail;
    end case;
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

comment on function public.finalize_email(uuid, text, text, text, text) is 'Send-email step 2, as the service (and a reconciler''s way to settle unknown mails): records sent, refunded (credits returned exactly once) or unknown (credits kept); finalized mails are returned unchanged. service_role only.';

revoke all on function public.finalize_email(uuid, text, text, text, text) from public, anon, authenticated, service_role;
grant execute on function public.finalize_email(uuid, text, text, text, text) to service_role;
