-- The tables the credit policy writes (billing_payments, billing_payment_keys,
-- billing_reversals) and the ledger's new reasons: structure, RLS, who
-- reads and who writes. Members of an account read its payments (their
-- billing history, refunds included); an outsider and anon read nothing;
-- the key map and the reversals are service_role's alone; nobody but
-- apply_billing_event's helpers writes any of them, and nobody but a
-- billing reversal takes a balance below 0.
begin;
create extension if not exists pgtap;
\ir _helpers.psql

do $$
begin
  perform tests.create_user('owner');
  perform tests.create_user('member');
  perform tests.create_user('outsider');
  perform tests.create_user('stranger');
  perform tests.create_team_account('owner', 'team');
  perform tests.add_member(tests.account_id('team'), 'member', 'member');
  perform tests.create_team_account('stranger', 'elsewhere');

  insert into public.billing_payments (provider, reference, account_id, user_id, amount, credits_granted, paid_at)
  values
    ('stripe', 'in_team', tests.account_id('team'), tests.user_id('owner'), 2900, 100, now()),
    ('paddle', 'txn_elsewhere', tests.account_id('elsewhere'), tests.user_id('stranger'), 900, 20, now());
  insert into public.billing_payment_keys (provider, key, reference)
  values ('stripe', 'pi_team', 'in_team');
  insert into public.billing_reversals (provider, id, kind, status, amount, payment_keys, reference, last_event_at)
  values ('stripe', 're_team', 'refund', 'effective', 100, '{pi_team}', 'in_team', now());
end
$$;

select plan(44);

/*
 * Structure
 */
select columns_are('public', 'billing_payments',
  array['provider', 'reference', 'account_id', 'user_id', 'subscription_id', 'amount', 'currency',
        'billing_reason', 'credits_granted', 'amount_refunded', 'amount_disputed', 'credits_taken_back',
        'reversal_entries', 'paid_at', 'created_at', 'updated_at'],
  'public.billing_payments has exactly its documented columns');
select columns_are('public', 'billing_payment_keys',
  array['provider', 'key', 'reference', 'created_at'],
  'public.billing_payment_keys has exactly its documented columns');
select columns_are('public', 'billing_reversals',
  array['provider', 'id', 'kind', 'status', 'amount', 'currency', 'cumulative', 'payment_keys', 'reference',
        'provider_status', 'last_event_at', 'created_at', 'updated_at'],
  'public.billing_reversals has exactly its documented columns');
select col_is_pk('public', 'billing_payments', array['provider', 'reference'], 'a payment is recorded once per reference');
select col_is_pk('public', 'billing_payment_keys', array['provider', 'key'], 'a payment id maps to one payment');
select col_is_pk('public', 'billing_reversals', array['provider', 'id'], 'a refund or dispute is kept once by its id');
select fk_ok('public', 'billing_payments', 'account_id', 'public', 'accounts', 'id',
  'a payment belongs to an account');
select fk_ok('public', 'billing_payments', 'user_id', 'public', 'profiles', 'id',
  'a payment names who received its credits');
select has_index('public', 'billing_payments', 'ix_billing_payments_account_id', array['account_id'],
  'payments are indexed by account');
select has_index('public', 'billing_reversals', 'ix_billing_reversals_reference', array['provider', 'reference'],
  'reversals are indexed by the payment they reverse');
select trigger_is('public', 'billing_payments', 'set_billing_payments_timestamps', 'kit', 'set_timestamps',
  'billing_payments keeps updated_at current');
select trigger_is('public', 'billing_reversals', 'set_billing_reversals_timestamps', 'kit', 'set_timestamps',
  'billing_reversals keeps updated_at current');
select trigger_is('public', 'profiles', 'refuse_credit_overdraft', 'kit', 'refuse_credit_overdraft',
  'profiles refuses an overdraft by trigger');

/*
 * Row level security and privileges
 */
select ok((select bool_and(relrowsecurity) from pg_class
           where oid in ('public.billing_payments'::regclass, 'public.billing_payment_keys'::regclass,
                         'public.billing_reversals'::regclass)),
  'RLS is on for billing_payments, billing_payment_keys and billing_reversals');
select policies_are('public', 'billing_payments', array['Billing payments are viewable by the account''s members'],
  'billing_payments has only its read policy');
select policies_are('public', 'billing_payment_keys', array[]::name[],
  'billing_payment_keys has no policy: service_role only');
select policies_are('public', 'billing_reversals', array[]::name[],
  'billing_reversals has no policy: service_role only');
select is_empty($$
  select p.oid::regprocedure, r.rolname from pg_proc p
  cross join (values ('anon'), ('authenticated'), ('service_role'), ('public')) as r (rolname)
  where p.oid in (
    'kit.refuse_credit_overdraft()'::regprocedure,
    'kit.post_credit_transaction(uuid, integer, text, text)'::regprocedure)
    and has_function_privilege(r.rolname, p.oid, 'EXECUTE')
$$, 'no API role or PUBLIC may execute the ledger''s kit functions');

/*
 * Who sees what
 */
select tests.authenticate_as_anon();
select tests.reads_denied('anon', array['billing_payments', 'billing_reversals']);

select tests.authenticate_as('outsider');
select is_empty($$ select reference from public.billing_payments $$, 'an outsider sees no payments');
select tests.denied($$ select * from public.billing_payment_keys $$,
  'billing_payment_keys', 'an outsider cannot read the key map');

select tests.authenticate_as('member');
select set_eq($$ select reference from public.billing_payments $$, array['in_team'],
  'a member sees their team''s payments only');
select tests.denied($$ select * from public.billing_reversals $$,
  'billing_reversals', 'a member cannot read the reversals');

select tests.authenticate_as('owner');
select set_eq($$ select reference from public.billing_payments $$, array['in_team'],
  'the owner sees their team''s payments only');
select tests.denied(
  $$ update public.billing_payments set credits_taken_back = 0 where reference = 'in_team' $$,
  'billing_payments', 'the owner cannot undo a take-back');
select tests.denied(
  $$ insert into public.billing_payments (provider, reference, account_id, amount, paid_at)
     values ('stripe', 'in_forged', tests.account_id('team'), 1, now()) $$,
  'billing_payments', 'the owner cannot record a payment');
select tests.denied(
  $$ delete from public.billing_payments where reference = 'in_team' $$,
  'billing_payments', 'the owner cannot delete a payment');
select tests.denied(
  $$ update public.billing_reversals set status = 'void' where id = 're_team' $$,
  'billing_reversals', 'the owner cannot void a refund');
select tests.denied(
  $$ insert into public.billing_payment_keys (provider, key, reference) values ('stripe', 'pi_x', 'in_team') $$,
  'billing_payment_keys', 'the owner cannot map a payment id');

select tests.authenticate_as_service_role();
select set_eq($$ select reference from public.billing_payments $$, array['in_team', 'txn_elsewhere'],
  'service_role sees every payment');
select set_eq($$ select id from public.billing_reversals $$, array['re_team'],
  'and every reversal');

/*
 * Constraints, as the table's owner
 */
select tests.clear_authentication();
select throws_ok(
  $$ update public.billing_payments set credits_taken_back = 101 where reference = 'in_team' $$,
  '23514', null, 'a payment never takes back more credits than it granted');
select throws_ok(
  $$ update public.billing_payments set amount = -1 where reference = 'in_team' $$,
  '23514', null, 'a payment''s amount is never negative');
select throws_ok(
  $$ insert into public.billing_reversals (provider, id, kind, status, amount, payment_keys, last_event_at)
     values ('stripe', 're_x', 'gift', 'effective', 1, '{pi_x}', now()) $$,
  '23514', null, 'a reversal is a refund, a dispute or the reversal of one');
select throws_ok(
  $$ insert into public.billing_reversals (provider, id, kind, status, amount, payment_keys, last_event_at)
     values ('stripe', 're_y', 'refund', 'done', 1, '{pi_x}', now()) $$,
  '23514', null, 'its status is pending, effective or void');
select throws_ok(
  $$ insert into public.billing_reversals (provider, id, kind, status, amount, payment_keys, last_event_at)
     values ('stripe', 're_z', 'refund', 'effective', 1, '{}', now()) $$,
  '23514', null, 'a reversal names at least one payment id');
select throws_ok(
  $$ insert into public.credit_transactions (user_id, amount, reason, reference)
     values (tests.user_id('owner'), 10, 'billing_reversal', 'stripe:in_team:9') $$,
  '23514', null, 'a billing_reversal always takes credits');
select throws_ok(
  $$ insert into public.credit_transactions (user_id, amount, reason, reference)
     values (tests.user_id('owner'), -10, 'billing_restore', 'stripe:in_team:9') $$,
  '23514', null, 'a billing_restore always adds them');
select is(
  kit.post_credit_transaction(tests.user_id('member'), -301, 'billing_reversal', 'stripe:in_team:1'), -1,
  'a billing reversal may take a balance below 0');
select throws_ok(
  $$ select kit.post_credit_transaction(tests.user_id('member'), -1, 'manual_adjustment', 'deeper') $$,
  '23514', 'a credit balance cannot go below 0',
  'nothing else may take it further');
select throws_ok(
  $$ select kit.post_credit_transaction(tests.user_id('owner'), -301, 'email_reserve', gen_random_uuid()::text) $$,
  '23514', 'a credit balance cannot go below 0',
  'a send can never overdraw');
select is(
  kit.post_credit_transaction(tests.user_id('member'), 1, 'billing_restore', 'stripe:in_team:2'), 0,
  'a restore brings it back');
select results_eq(
  $$ select tests.credits('member'), tests.ledger_sum('member') $$,
  $$ values (0, 0) $$,
  'the balance equals the ledger throughout');

select * from finish();
rollback;
