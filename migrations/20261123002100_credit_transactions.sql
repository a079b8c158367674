/*
 * Credit transactions: the append-only ledger behind profiles.credits.
 *
 * Every change to a balance is one row here, written in the same
 * transaction as the change, so a user's balance always equals the sum of
 * their rows. (reason, reference) is unique: a signup grant per user, a
 * purchase per order, a reservation and a refund per mail, each happen at
 * most once, however often the code that records them is retried.
 *
 * Nobody edits or deletes a row: no API role is granted either, and a
 * trigger refuses both to the table's owner too. Rows go only with their
 * user (deleting the auth.users row cascades through profiles to here).
 */

/*
 * Table: public.credit_transactions
 *
 * The sign of the amount follows the reason: a reservation takes credits,
 * a manual adjustment may go either way, everything else adds.
 */
create table if not exists public.credit_transactions (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.profiles (id) on delete cascade,
  amount integer not null
    constraint credit_transactions_amount_not_zero check (amount <> 0),
  reason text not null
    constraint credit_transactions_reason_known check (
      reason in ('signup_grant', 'purchase', 'renewal', 'email_reserve', 'email_refund', 'manual_adjustment')
    ),
  reference text not null
    constraint credit_transactions_reference_format check (
      char_length(reference) between 1 and 255
      and btrim(reference) <> ''
    ),
  created_at timestamptz not null default now(),
  constraint credit_transactions_amount_sign check (
    case reason
      when 'email_reserve' then amount < 0
      when 'manual_adjustment' then true
      else amount > 0
    end
  ),
  constraint credit_transactions_reason_reference_key unique (reason, reference)
);

comment on table public.credit_transactions is 'Append-only ledger of credit changes; a user''s balance (profiles.credits) is the sum of their rows. Each (reason, reference) happens once. Users read their own rows.';
comment on column public.credit_transactions.user_id is 'The user whose balance changed.';
comment on column public.credit_transactions.amount is 'Credits added (positive) or taken (negative); never 0. email_reserve is negative, manual_adjustment either, the rest positive.';
comment on column public.credit_transactions.reason is 'Why: signup_grant, purchase, renewal, email_reserve, email_refund or manual_adjustment.';
comment on column public.credit_transactions.reference is 'What the change is for: the user id for signup_grant, the mail id for email_reserve and email_refund, the order or invoice id for purchases and renewals, a ticket or note id for manual adjustments. Unique per reason.';
comment on column public.credit_transactions.created_at is 'When the change was recorded.';

-- A user's history, newest first. (The unique constraint indexes
-- (reason, reference).)
create index if not exists ix_credit_transactions_user_id_created_at
  on public.credit_transactions (user_id, created_at desc);

-- Read-only for everyone through the API: rows are written by the credit
-- functions, which run as the owner.
revoke all on table public.credit_transactions from public, anon, authenticated, service_role;
grant select on table public.credit_transactions to authenticated, service_role;

alter table public.credit_transactions enable row level security;

create policy "Credit transactions are viewable by their users"
  on public.credit_transactions
  for select
  to authenticated
  using (user_id = (select auth.uid()));

/*
 * Function: kit.refuse_credit_transaction_change()
 *
 * BEFORE UPDATE OR DELETE trigger: the ledger is append-only, for the
 * table's owner as well. The one delete let through is the cascade from a
 * deleted profile, when the user and their balance are gone anyway: by the
 * time the cascade deletes the ledger rows, the profile row is no longer
 * visible.
 */
create or replace function kit.refuse_credit_transaction_change()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'DELETE' and not exists (
    select 1 from public.profiles profile where profile.id = old.user_id
  ) then
    return old;
  end if;

  raise exception 'credit transactions cannot be changed or deleted'
    using errcode = 'insufficient_privilege',
          detail = 'The credit ledger is append-only: record a correction as a new manual_adjustment.',
          table = 'credit_transactions',
          schema = 'public';
end;
$$;

comment on function kit.refuse_credit_transaction_change() is 'BEFORE UPDATE OR DELETE trigger on credit_transactions: refuses both, except the cascade from a deleted profile.';

revoke all on function kit.refuse_credit_transaction_change() from public, anon, authenticated, service_role;

create trigger refuse_credit_transaction_change
  before update or delete on public.credit_transactions
  for each row execute function kit.refuse_credit_transaction_change();

/*
 * Function: kit.post_credit_transaction(user_id, amount, reason, reference)
 *
 * Records one ledger row and moves the user's balance by the same amount,
 * returning the new balance: the one place where credits change after
 * sign-up. A caller taking credits locks the profile first (select ... for
 * update) and checks that the balance covers them, so it can answer with a
 * proper error; the check constraint on profiles.credits still refuses an
 * overdraft, and the unique (reason, reference) a second recording of the
 * same thing.
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

  update public.profiles profile
  set credits = profile.credits + post_credit_transaction.amount
  where profile.id = post_credit_transaction.user_id
  returning profile.credits into new_balance;

  return new_balance;
end;
$$;

comment on function kit.post_credit_transaction(uuid, integer, text, text) is 'Writes one ledger row and moves profiles.credits by its amount; returns the new balance. Callers taking credits lock the profile and check the balance first.';

revoke all on function kit.post_credit_transaction(uuid, integer, text, text) from public, anon, authenticated, service_role;
