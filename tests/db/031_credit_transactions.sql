-- public.credit_transactions, the append-only ledger behind
-- profiles.credits: users read their own rows, nobody writes one through
-- the API, nobody (not even the table's owner) edits or deletes one, and
-- each (reason, reference) is recorded once. Walked as anon, another user,
-- the rows' user and service_role; then the constraints.
begin;
create extension if not exists pgtap;
\ir _helpers.psql

do $$
begin
  perform tests.create_user('ada');
  perform tests.create_user('bob');
  perform public.grant_credits(tests.user_id('ada'), 50, 'purchase', 'order-ada-1');
end
$$;

select plan(49);

/*
 * Structure
 */
select has_table('public', 'credit_transactions', 'public.credit_transactions exists');
select columns_are('public', 'credit_transactions',
  array['id', 'user_id', 'amount', 'reason', 'reference', 'created_at'],
  'public.credit_transactions has exactly its documented columns');
select col_is_pk('public', 'credit_transactions', 'id', 'ledger rows are keyed by id');
select fk_ok('public', 'credit_transactions', 'user_id', 'public', 'profiles', 'id',
  'a ledger row belongs to a profile');
select col_is_unique('public', 'credit_transactions', array['reason', 'reference'],
  'each (reason, reference) is recorded at most once');
select has_index('public', 'credit_transactions', 'ix_credit_transactions_user_id_created_at',
  array['user_id', 'created_at'], 'a user''s ledger is indexed newest first');
select col_type_is('public', 'credit_transactions', 'amount', 'integer', 'amounts are integers');

select policies_are('public', 'credit_transactions',
  array['Credit transactions are viewable by their users'],
  'credit_transactions has only its read policy');
select trigger_is('public', 'credit_transactions', 'refuse_credit_transaction_change',
  'kit', 'refuse_credit_transaction_change', 'ledger rows are guarded against changes');

/*
 * anon
 */
select tests.authenticate_as_anon();

select tests.denied($$ select * from public.credit_transactions $$,
  'credit_transactions', 'anon cannot read the ledger');
select tests.denied(
  $$ insert into public.credit_transactions (user_id, amount, reason, reference)
     values (tests.user_id('ada'), 1000, 'purchase', 'free-money') $$,
  'credit_transactions', 'anon cannot write the ledger');
select tests.denied($$ update public.credit_transactions set amount = 1000 $$,
  'credit_transactions', 'anon cannot change the ledger');
select tests.denied($$ delete from public.credit_transactions $$,
  'credit_transactions', 'anon cannot delete from the ledger');

/*
 * Another user (bob)
 */
select tests.authenticate_as('bob');

select results_eq(
  $$ select user_id, amount, reason from public.credit_transactions $$,
  $$ values (tests.user_id('bob'), 300, 'signup_grant') $$,
  'a user sees their own ledger rows and nobody else''s');
select tests.denied(
  $$ insert into public.credit_transactions (user_id, amount, reason, reference)
     values (tests.user_id('ada'), -100, 'manual_adjustment', 'grief') $$,
  'credit_transactions', 'a user cannot write into someone else''s ledger');
select tests.denied(
  $$ update public.credit_transactions set amount = 1 where user_id = tests.user_id('ada') $$,
  'credit_transactions', 'a user cannot change someone else''s ledger rows');
select tests.denied(
  $$ delete from public.credit_transactions where user_id = tests.user_id('ada') $$,
  'credit_transactions', 'a user cannot delete someone else''s ledger rows');

/*
 * The rows' own user (ada)
 */
select tests.authenticate_as('ada');

select results_eq(
  $$ select amount, reason, reference from public.credit_transactions order by amount desc $$,
  $$ values (300, 'signup_grant', tests.user_id('ada')::text), (50, 'purchase', 'order-ada-1') $$,
  'a user reads their own ledger: the signup grant and the purchase');
select tests.denied(
  $$ insert into public.credit_transactions (user_id, amount, reason, reference)
     values (tests.user_id('ada'), 1000, 'purchase', 'self-service') $$,
  'credit_transactions', 'a user cannot grant themselves credits');
select tests.denied(
  $$ update public.credit_transactions set amount = 5000 where reason = 'purchase' $$,
  'credit_transactions', 'a user cannot inflate a row of their ledger');
select tests.denied(
  $$ delete from public.credit_transactions where amount < 0 $$,
  'credit_transactions', 'a user cannot delete rows of their ledger');
select throws_ok(
  $$ select kit.post_credit_transaction(tests.user_id('ada'), 1000, 'purchase', 'direct') $$,
  '42501', 'permission denied for schema kit', 'a user cannot call the ledger''s posting function');

/*
 * service_role
 */
select tests.authenticate_as_service_role();

select results_eq(
  $$ select count(*)::int from public.credit_transactions where user_id in (tests.user_id('ada'), tests.user_id('bob')) $$,
  $$ values (3) $$,
  'service_role reads every user''s ledger');
select tests.denied(
  $$ insert into public.credit_transactions (user_id, amount, reason, reference)
     values (tests.user_id('bob'), 10, 'purchase', 'order-bob-1') $$,
  'credit_transactions', 'service_role cannot write a ledger row that the balance would not follow');
select tests.denied($$ update public.credit_transactions set amount = 1 $$,
  'credit_transactions', 'service_role cannot change the ledger');
select tests.denied($$ delete from public.credit_transactions $$,
  'credit_transactions', 'service_role cannot delete from the ledger');
select throws_ok(
  $$ select kit.post_credit_transaction(tests.user_id('bob'), 10, 'purchase', 'direct') $$,
  '42501', 'permission denied for schema kit', 'service_role cannot call the ledger''s posting function');

/*
 * Append-only for the table's owner too
 */
select tests.clear_authentication();

select throws_ok(
  $$ update public.credit_transactions set amount = 5000 where user_id = tests.user_id('ada') and reason = 'purchase' $$,
  '42501', 'credit transactions cannot be changed or deleted',
  'not even the table''s owner can change a ledger row');
select throws_ok(
  $$ delete from public.credit_transactions where user_id = tests.user_id('ada') $$,
  '42501', 'credit transactions cannot be changed or deleted',
  'nor delete one while its user exists');
select is(tests.ledger_sum('ada'), 350, 'ada''s ledger is as it was: 300 + 50');
select is(tests.credits('ada'), tests.ledger_sum('ada'), 'and her balance still equals it');

/*
 * Constraints
 *
 * Inserted directly as the table's owner, to reach the constraints; such
 * inserts do not move the balance (only kit.post_credit_transaction does),
 * so the ones that succeed here net out or concern a user deleted below.
 */
select throws_ok(
  $$ insert into public.credit_transactions (user_id, amount, reason, reference)
     values (tests.user_id('bob'), 300, 'signup_grant', tests.user_id('bob')::text) $$,
  '23505', 'duplicate key value violates unique constraint "credit_transactions_reason_reference_key"',
  'a second signup grant for the same user is refused');
select throws_ok(
  $$ insert into public.credit_transactions (user_id, amount, reason, reference)
     values (tests.user_id('bob'), 50, 'purchase', 'order-ada-1') $$,
  '23505', 'duplicate key value violates unique constraint "credit_transactions_reason_reference_key"',
  'an order pays out once, whoever it is recorded for');
select lives_ok(
  $$ insert into public.credit_transactions (user_id, amount, reason, reference)
     values (tests.user_id('ada'), 1, 'renewal', 'order-ada-1') $$,
  'the same reference may appear under another reason');
select throws_ok(
  $$ insert into public.credit_transactions (user_id, amount, reason, reference)
     values (tests.user_id('bob'), 0, 'manual_adjustment', 'nothing') $$,
  '23514', null, 'an amount of 0 is not a transaction');
select throws_ok(
  $$ insert into public.credit_transactions (user_id, amount, reason, reference)
     values (tests.user_id('bob'), 5, 'email_reserve', 'mail-1') $$,
  '23514', 'new row for relation "credit_transactions" violates check constraint "credit_transactions_amount_sign"',
  'a reservation takes credits, it never adds them');
select throws_ok(
  $$ insert into public.credit_transactions (user_id, amount, reason, reference)
     values (tests.user_id('bob'), -5, 'email_refund', 'mail-1') $$,
  '23514', 'new row for relation "credit_transactions" violates check constraint "credit_transactions_amount_sign"',
  'a refund adds credits, it never takes them');
select throws_ok(
  $$ insert into public.credit_transactions (user_id, amount, reason, reference)
     values (tests.user_id('bob'), -5, 'purchase', 'order-x') $$,
  '23514', 'new row for relation "credit_transactions" violates check constraint "credit_transactions_amount_sign"',
  'a purchase adds credits');
select lives_ok(
  $$ insert into public.credit_transactions (user_id, amount, reason, reference)
     values (tests.user_id('bob'), -5, 'manual_adjustment', 'correction-1'),
            (tests.user_id('bob'), 5, 'manual_adjustment', 'correction-2') $$,
  'a manual adjustment may go either way');
select throws_ok(
  $$ insert into public.credit_transactions (user_id, amount, reason, reference)
     values (tests.user_id('bob'), 5, 'gift', 'why-not') $$,
  '23514', 'new row for relation "credit_transactions" violates check constraint "credit_transactions_reason_known"',
  'only the known reasons are accepted');
select throws_ok(
  $$ insert into public.credit_transactions (user_id, amount, reason, reference)
     values (tests.user_id('bob'), 5, 'purchase', '   ') $$,
  '23514', 'new row for relation "credit_transactions" violates check constraint "credit_transactions_reference_format"',
  'a blank reference is refused');
select throws_ok(
  $$ insert into public.credit_transactions (user_id, amount, reason, reference)
     values ('00000000-0000-4000-8000-00000000dead', 5, 'purchase', 'order-ghost') $$,
  '23503', null, 'a ledger row needs a profile');

/*
 * kit.post_credit_transaction: ledger and balance move together
 */
select is(
  kit.post_credit_transaction(tests.user_id('bob'), 25, 'purchase', 'order-bob-2'),
  325,
  'posting returns the new balance');
select results_eq(
  $$ select tests.credits('bob'), tests.ledger_sum('bob') $$,
  $$ values (325, 325) $$,
  'and moves the balance and the ledger by the same amount');
select throws_ok(
  $$ select kit.post_credit_transaction(tests.user_id('bob'), -326, 'manual_adjustment', 'overdraft') $$,
  '23514', 'a credit balance cannot go below 0',
  'posting cannot overdraw a balance');
select results_eq(
  $$ select tests.credits('bob'), tests.ledger_sum('bob') $$,
  $$ values (325, 325) $$,
  'and a refused posting leaves neither the balance nor the ledger changed');

/*
 * Rows go with their user
 */
select lives_ok(
  $$ delete from auth.users where id = tests.user_id('ada') $$,
  'deleting a user cascades through their profile to their ledger');
select is_empty(
  $$ select 1 from public.credit_transactions where user_id = tests.user_id('ada') $$,
  'and their ledger rows are gone with them');
select is(tests.ledger_sum('bob'), 325, 'while other users'' ledgers are untouched');

select * from finish();
rollback;
