/*
 * User mails: a send whose outcome is unclear has a state of its own.
 *
 * Until now a mail ended 'sent' or 'refunded', and every failed send was
 * refunded. But after a timeout, a 5xx (the provider may have accepted the
 * mail before failing) or a partial acceptance (some recipients sent, some
 * refused), the provider may well have sent it, and refunding handed out
 * free sends. Such a mail is now 'unknown': the credits stay taken, `error`
 * says why, and a reconciler settles it as 'sent' or 'refunded' through
 * public.finalize_email. Only a mail the provider certainly did not send is
 * refunded at once.
 */

alter table public.user_mails
  drop constraint user_mails_status_known,
  add constraint user_mails_status_known check (status in ('reserved', 'sent', 'unknown', 'refunded')),
  add constraint user_mails_unknown_has_error check (status <> 'unknown' or error is not null);

comment on table public.user_mails is 'Emails users sent through the product: reserved (paid, being sent), sent, unknown (paid; the provider may have sent it, awaiting reconciliation) or refunded. Written only by reserve_email and finalize_email; senders read their own.';
comment on column public.user_mails.status is 'reserved (paid, outcome not yet recorded), sent, unknown (paid; the provider may have sent it; a reconciler settles it as sent or refunded), or refunded (certainly not sent, credits returned).';
comment on column public.user_mails.error is 'Why the send failed (refunded mails) or why its outcome is unknown (kept once the mail is settled).';
comment on column public.user_mails.sent_at is 'When the provider accepted it, or when a reconciler confirmed an unknown mail as sent; null unless sent.';

/*
 * Function: kit.guard_user_mail_update()
 *
 * BEFORE UPDATE trigger, replacing the one that let only reserved mails
 * change: a reserved mail may become sent, unknown or refunded, an unknown
 * mail only sent or refunded (never reserved again, so nothing treats it as
 * in flight twice), and a sent or refunded mail stays as it is. Only the
 * outcome changes (status, provider, provider_message_id, error, sent_at;
 * created_at and updated_at are kit.set_timestamps'): every other column,
 * including any added later, is what was sent, by whom and for what price,
 * fixed at reservation.
 */
create or replace function kit.guard_user_mail_update()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  outcome constant text[] := array['status', 'provider', 'provider_message_id', 'error', 'sent_at',
                                   'created_at', 'updated_at'];
begin
  if old.status not in ('reserved', 'unknown') then
    raise exception 'a % mail cannot change', old.status
      using errcode = 'check_violation',
            detail = format('mail %s is already finalized', old.id),
            table = 'user_mails',
            schema = 'public';
  end if;

  if old.status = 'unknown' and new.status = 'reserved' then
    raise exception 'an unknown mail is settled as sent or refunded, never reserved again'
      using errcode = 'check_violation',
            detail = format('mail %s may have been sent', old.id),
            table = 'user_mails',
            schema = 'public';
  end if;

  if (to_jsonb(new) - outcome) is distinct from (to_jsonb(old) - outcome) then
    raise exception 'only the outcome of a reserved or unknown mail can change'
      using errcode = 'check_violation',
            detail = 'status, provider, provider_message_id, error and sent_at may change; the rest is fixed at reservation.',
            table = 'user_mails',
            schema = 'public';
  end if;

  return new;
end;
$$;

comment on function kit.guard_user_mail_update() is 'BEFORE UPDATE trigger on user_mails: only the outcome of a reserved or unknown mail may change, an unknown mail never back to reserved; sent and refunded mails, and every column but the outcome, are fixed.';

revoke all on function kit.guard_user_mail_update() from public, anon, authenticated, service_role;
