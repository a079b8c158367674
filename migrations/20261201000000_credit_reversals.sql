/*
 * Credits taken back by refunds and disputes, and the debt they may leave.
 *
 * Credits bought and then refunded (or charged back) are taken back by the
 * billing functions, in two new ledger reasons:
 *
 *   - billing_reversal (always negative): credits a refund, a dispute or a
 *     chargeback takes back;
 *   - billing_restore (always positive): credits returned when that is
 *     undone (a dispute won, a refund that failed).
 *
 * A take-back is recorded in full even when the credits were already
 * spent: the balance then goes below 0, a debt the ledger explains, and
 * reserve_email refuses every send (402) until grants bring the balance
 * back above the price. Nothing else may take a balance below 0: the check
 * on profiles.credits becomes a trigger that lets only a billing reversal
 * through (kit.post_credit_transaction says so for the one statement that
 * moves the balance).
 */

alter table public.credit_transactions
  drop constraint if exists credit_transactions_reason_known,
  drop constraint if exists credit_transactions_amount_sign;

alter table public.credit_transactions
  add constraint credit_transactions_reason_known check (
    reason in (
      'signup_grant', 'purchase', 'renewal', 'email_reserve', 'email_refund', 'manual_adjustment',
      'billing_reversal', 'billing_restore'
    )
  ),
  add constraint credit_transactions_amount_sign check (
    case reason
      when 'email_reserve' then amount < 0
      when 'billing_reversal' then amount < 0
      when 'manual_adjustment' then true
      else amount > 0
    end
  );

comment on column public.credit_transactions.reason is 'Why: signup_grant, purchase, renewal, email_reserve, email_refund, manual_adjustment, billing_reversal (credits a refund or dispute took back) or billing_restore (returned when that was undone).';
comment on column public.credit_transactions.amount is 'Credits added (positive) or taken (negative); never 0. email_reserve and billing_reversal are negative, manual_adjustment either, the rest positive.';
comment on column public.credit_transactions.reference is 'What the change is for: the user id for signup_grant, the mail id for email_reserve and email_refund, ''<provider>:<order or invoice id>'' for purchases and renewals, ''<provider>:<order or invoice id>:<n>'' for the n-th reversal or restore of that payment, a ticket or note id for manual adjustments. Unique per reason.';

/*
 * Function: kit.refuse_credit_overdraft()
 *
 * BEFORE UPDATE OF credits trigger on profiles: a balance may not go (or go
 * further) below 0, for the table's owner too, unless the change is a
 * billing reversal posted by kit.post_credit_transaction, which says so in
 * the transaction-local setting kit.credit_debt for that one statement.
 */
create or replace function kit.refuse_credit_overdraft()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.credits < 0 and new.credits < old.credits
     and coalesce(current_setting('kit.credit_debt', true), '') <> 'billing_reversal' then
    raise exception 'a credit balance cannot go below 0'
      using errcode = 'check_violation',
            constraint = 'profiles_credits_not_negative',
            detail = 'Only a billing reversal (a refund or dispute taking back credits already spent) may leave a debt.',
            table = 'profiles',
            schema = 'public';
  end if;
  return new;
end;
$$;

comment on function kit.refuse_credit_overdraft() is 'BEFORE UPDATE OF credits trigger on profiles: refuses a balance below 0 except for a billing reversal.';
revoke all on function kit.refuse_credit_overdraft() from public, anon, authenticated, service_role;

alter table public.profiles drop constraint if exists profiles_credits_not_negative;

drop trigger if exists refuse_credit_overdraft on public.profiles;
create trigger refuse_credit_overdraft
  before update of credits on public.profiles
  for each row execute function kit.refuse_credit_overdraft();

comment on column public.profiles.credits is 'Credits left to spend. Always equal to the sum of the user''s rows in credit_transactions. Below 0 only after a refund or dispute took back credits already spent (a debt); sends are refused until it is paid off.';

/*
 * kit.post_credit_transaction, as before, and the one place that lets a
 * billing reversal take a balance below 0.
 */
create or replace function kit.post_credit_transaction(
  user_id uuid,
  amount integer,
  reason text,
  reference text
)
returns integer
language plpgsql
volatile
set search_path = ''
as $$
declare
  new_balance integer;
begin
  insert into public.credit_transactions (user_id, amount, reason, reference)
  values (
    post_credit_transaction.user_id,
    post_credit_transaction.amount,
    post_credit_transaction.reason,
    post_credit_transaction.reference
  );
  perform set_config('kit.credit_debt', post_credit_transaction.reason, true);
  update public.profiles profile
  set credits = profile.credits + post_credit_transaction.amount
  where profile.id = post_credit_transaction.user_id
  returning profile.credits into new_balance;
  perform set_config('kit.credit_debt', '', true);
  return new_balance;
end;
$$;

comment on function kit.post_credit_transaction(uuid, integer, text, text) is 'Writes one ledger row and moves profiles.credits by its amount; returns the new balance. Only a billing_reversal may take the balance below 0. Callers taking credits lock the profile and check the balance first.';
revoke all on function kit.post_credit_transaction(uuid, integer, text, text) from public, anon, authenticated, service_role;

/*
 * public.grant_credits, as before, except that a manual adjustment is
 * refused only when it takes credits and would leave the balance below 0:
 * adding credits to a balance in debt is how a debt is forgiven.
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
    if p_amount < 0 and balance::bigint + p_amount < 0 then
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

comment on function public.grant_credits(uuid, integer, text, text) is 'Adds (purchase, renewal) or adjusts (manual_adjustment; taking credits never below 0) a user''s credits once per (reason, reference); a repeat answers applied: false. service_role only.';
revoke all on function public.grant_credits(uuid, integer, text, text) from public, anon, authenticated, service_role;
grant execute on function public.grant_credits(uuid, integer, text, text) to service_role;
