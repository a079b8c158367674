/*
 * Function: public.grant_credits(p_user_id, p_amount, p_reason, p_reference)
 *
 * Trusted server code (billing webhooks, support tools) changes a balance
 * through this, with the service key, and only through this: a purchase or
 * a renewal adds credits, a manual adjustment adds or takes them (never
 * below 0). p_reference names what the change is for (the order, invoice
 * or support ticket), and each (reason, reference) is applied once:
 *
 *   - a repeat for the same user and amount (a retried webhook) changes
 *     nothing and answers "applied": false with the current balance;
 *   - a repeat for another user or amount raises http_409, since it is not
 *     the same grant; two such calls racing for different users end in the
 *     ledger's unique violation, also a 409 through PostgREST.
 *
 * The profile row is locked first, so grants, reservations and refunds of
 * one user apply one after the other. Raises http_422 for a reason other
 * than purchase, renewal or manual_adjustment (the other reasons belong to
 * sign-up and sending), a zero amount, a purchase or renewal that takes
 * credits, a blank reference, or an adjustment that would leave the
 * balance negative; http_404 for an unknown user.
 *
 * Returns {"user_id", "reason", "reference", "amount", "credits",
 * "applied"}, credits being the balance after the call.
 *
 * SECURITY DEFINER because no API role writes the ledger or
 * profiles.credits; search_path is pinned, every name qualified, and only
 * service_role may execute it.
 */
create or replace function public.grant_credits(
  p_user_id uuid,
  p_amount integer,
  p_reason text,
  p_reference text
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  balance integer;
  previous public.credit_transactions;
begin
  if p_reason is null or p_reason not in ('purchase', 'renewal', 'manual_adjustment') then
    raise exception 'http_422: Credits can only be granted for a purchase, a renewal or a manual adjustment';
  end if;

  if p_amount is null or p_amount = 0 then
    raise exception 'http_422: The amount must not be zero';
  end if;

  if p_amount < 0 and p_reason <> 'manual_adjustment' then
    raise exception 'http_422: A purchase or renewal must add credits';
  end if;

  if nullif(btrim(p_reference), '') is null then
    raise exception 'http_422: A reference is required';
  end if;

  select profile.credits
  into balance
  from public.profiles profile
  where profile.id = p_user_id
  for update;

  if not found then
    raise exception 'http_404: No such user';
  end if;

  select *
  into previous
  from public.credit_transactions ledger
  where ledger.reason = p_reason
    and ledger.reference = p_reference;

  if found then
    if previous.user_id <> p_user_id or previous.amount <> p_amount then
      raise exception 'http_409: This reference was already used for a different grant';
    end if;
  else
    if balance::bigint + p_amount < 0 then
      raise exception 'http_422: This adjustment would make the balance negative: the user has % credits', balance;
    end if;
    balance := kit.post_credit_transaction(p_user_id, p_amount, p_reason, p_reference);
  end if;

  return jsonb_build_object(
    'user_id', p_user_id,
    'reason', p_reason,
    'reference', p_reference,
    'amount', p_amount,
    'credits', balance,
    'applied', previous.id is null
  );
end;
$$;

comment on function public.grant_credits(uuid, integer, text, text) is 'Adds (purchase, renewal) or adjusts (manual_adjustment, never below 0) a user''s credits once per (reason, reference); a repeat answers applied: false. service_role only.';

revoke all on function public.grant_credits(uuid, integer, text, text) from public, anon, authenticated, service_role;
grant execute on function public.grant_credits(uuid, integer, text, text) to service_role;
