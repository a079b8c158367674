-- public.reserve_email, public.finalize_email and public.grant_credits:
-- who may call them, that reserve_email charges the signed-in user and
-- nobody else at the server's price, that it refuses to overdraw (402),
-- that a repeated idempotency key charges once, that a refund happens once
-- however often finalize_email is called, that grants apply once per
-- reference, and that the balance equals the ledger after every path.
begin;
create extension if not exists pgtap;
\ir _helpers.psql

do $$
begin
  perform tests.create_user('ada');
  perform tests.create_user('bob');
  perform tests.create_user('cleo');
  perform tests.allow_custom_content('ada');
  perform tests.allow_custom_content('bob');
  perform tests.allow_custom_content('cleo');
end
$$;

-- Answers of calls made in one role and inspected in another.
create table tests.answers (
  name text primary key,
  answer jsonb not null
);
grant select, insert on table tests.answers to authenticated, service_role;

-- True when every test user's balance equals the sum of their ledger.
create function tests.balances_match_ledger()
returns boolean
language sql
stable
as $$
  select bool_and(tests.credits(u.handle) = tests.ledger_sum(u.handle)) from tests.users u;
$$;

select plan(101);

/*
 * Signatures: no user id to pass, one way to call each
 */
select has_function('public', 'reserve_email', array['text[]', 'text', 'text', 'text', 'text', 'text', 'text', 'text'],
  'reserve_email(p_recipients, p_subject, p_content, p_mail_type, p_idempotency_key, p_request_hash, p_template_id, p_html) exists');
select has_function('public', 'finalize_email', array['uuid', 'text', 'text', 'text', 'text'],
  'finalize_email(p_mail_id, p_provider, p_outcome, p_provider_message_id, p_error) exists');
select has_function('public', 'grant_credits', array['uuid', 'integer', 'text', 'text'],
  'grant_credits(p_user_id, p_amount, p_reason, p_reference) exists');
select is(
  (select count(*)::int from pg_proc
   where pronamespace = 'public'::regnamespace and proname in ('reserve_email', 'finalize_email', 'grant_credits')),
  3,
  'each has exactly one signature: no overload to slip past the grants');
select is_empty(
  $$ select name from pg_proc, unnest(proargnames) as name
     where oid = 'public.reserve_email(text[], text, text, text, text, text, text, text)'::regprocedure
       and (name ~ 'user|uid|account|price|credit|cost') $$,
  'reserve_email takes no user, account, price or credit parameter');
select is_empty(
  $$ select argtype from pg_proc, unnest(proargtypes) as argtype
     where oid = 'public.reserve_email(text[], text, text, text, text, text, text, text)'::regprocedure
       and argtype = 'uuid'::regtype $$,
  'reserve_email takes no uuid at all, so it cannot be pointed at another user');
select is(
  (select array_to_string(proargnames, ', ') from pg_proc
   where oid = 'public.reserve_email(text[], text, text, text, text, text, text, text)'::regprocedure),
  'p_recipients, p_subject, p_content, p_mail_type, p_idempotency_key, p_request_hash, p_template_id, p_html',
  'reserve_email''s parameters are named as PostgREST callers send them');

select function_returns('public', 'reserve_email', array['text[]', 'text', 'text', 'text', 'text', 'text', 'text', 'text'],
  'jsonb', 'reserve_email returns jsonb');
select function_returns('public', 'finalize_email', array['uuid', 'text', 'text', 'text', 'text'], 'jsonb',
  'finalize_email returns jsonb');
select function_returns('public', 'grant_credits', array['uuid', 'integer', 'text', 'text'], 'jsonb',
  'grant_credits returns jsonb');
select is_definer('public', 'reserve_email', array['text[]', 'text', 'text', 'text', 'text', 'text', 'text', 'text'],
  'reserve_email runs as its owner, since users may not write credits, the ledger or mails');
select is_definer('public', 'finalize_email', array['uuid', 'text', 'text', 'text', 'text'],
  'finalize_email runs as its owner, since service_role may not write them either');
select is_definer('public', 'grant_credits', array['uuid', 'integer', 'text', 'text'],
  'grant_credits runs as its owner, likewise');

select function_privs_are('public', 'reserve_email', array['text[]', 'text', 'text', 'text', 'text', 'text', 'text', 'text'],
  'anon', array[]::text[], 'anon cannot call reserve_email');
select function_privs_are('public', 'reserve_email', array['text[]', 'text', 'text', 'text', 'text', 'text', 'text', 'text'],
  'authenticated', array['EXECUTE'], 'authenticated can call reserve_email');
select function_privs_are('public', 'reserve_email', array['text[]', 'text', 'text', 'text', 'text', 'text', 'text', 'text'],
  'service_role', array[]::text[], 'service_role cannot call reserve_email: it has no user to charge');
select function_privs_are('public', 'finalize_email', array['uuid', 'text', 'text', 'text', 'text'],
  'anon', array[]::text[], 'anon cannot call finalize_email');
select function_privs_are('public', 'finalize_email', array['uuid', 'text', 'text', 'text', 'text'],
  'authenticated', array[]::text[], 'authenticated cannot call finalize_email');
select function_privs_are('public', 'finalize_email', array['uuid', 'text', 'text', 'text', 'text'],
  'service_role', array['EXECUTE'], 'service_role can call finalize_email');
select function_privs_are('public', 'grant_credits', array['uuid', 'integer', 'text', 'text'],
  'anon', array[]::text[], 'anon cannot call grant_credits');
select function_privs_are('public', 'grant_credits', array['uuid', 'integer', 'text', 'text'],
  'authenticated', array[]::text[], 'authenticated cannot call grant_credits');
select function_privs_are('public', 'grant_credits', array['uuid', 'integer', 'text', 'text'],
  'service_role', array['EXECUTE'], 'service_role can call grant_credits');

/*
 * Who may call them
 */
select tests.authenticate_as_anon();

select throws_ok(
  $$ select public.reserve_email('{a@example.com}', 'Hi', 'Hello', 'custom', 'anon-1', 'h') $$,
  '42501', 'permission denied for function reserve_email', 'anon cannot reserve');
select throws_ok(
  $$ select public.finalize_email(gen_random_uuid(), 'resend', 'refunded', null, 'refund me') $$,
  '42501', 'permission denied for function finalize_email', 'anon cannot finalize');
select throws_ok(
  $$ select public.grant_credits(tests.user_id('ada'), 1000, 'purchase', 'anon-gift') $$,
  '42501', 'permission denied for function grant_credits', 'anon cannot grant credits');

select tests.authenticate_as('ada');

select throws_ok(
  $$ select public.finalize_email(gen_random_uuid(), 'resend', 'refunded', null, 'refund me') $$,
  '42501', 'permission denied for function finalize_email',
  'a user cannot finalize a mail, so cannot refund their own sent mail');
select throws_ok(
  $$ select public.grant_credits(tests.user_id('ada'), 1000, 'purchase', 'self-gift') $$,
  '42501', 'permission denied for function grant_credits', 'a user cannot grant themselves credits');
select throws_ok(
  $$ select public.grant_credits(tests.user_id('bob'), -300, 'manual_adjustment', 'grief') $$,
  '42501', 'permission denied for function grant_credits', 'a user cannot take someone else''s credits');

select tests.authenticate_as_service_role();

select throws_ok(
  $$ select public.reserve_email('{a@example.com}', 'Hi', 'Hello', 'custom', 'svc-1', 'h') $$,
  '42501', 'permission denied for function reserve_email', 'service_role cannot reserve');

-- A token with the authenticated role but no user.
select tests.authenticate_with_claims('{"role": "authenticated"}');
select throws_ok(
  $$ select public.reserve_email('{a@example.com}', 'Hi', 'Hello', 'custom', 'nobody-1', 'h') $$,
  'P0001', 'http_401: Sign in to send email', 'without a user, reserve_email answers 401');

-- A valid token of a user deleted since.
select tests.authenticate_with_claims('{"sub": "00000000-0000-4000-8000-00000000dead", "role": "authenticated"}');
select throws_ok(
  $$ select public.reserve_email('{a@example.com}', 'Hi', 'Hello', 'custom', 'ghost-1', 'h') $$,
  'P0001', 'http_401: Sign in to send email', 'a user who no longer exists gets the same 401');

/*
 * Anonymous sign-ins
 */
select tests.clear_authentication();
insert into auth.users (id, instance_id, aud, role, is_anonymous, created_at, updated_at)
values ('00000000-0000-4000-8000-0000000c0001', '00000000-0000-0000-0000-000000000000',
        'authenticated', 'authenticated', true, now(), now());

select tests.authenticate_with_claims(
  '{"sub": "00000000-0000-4000-8000-0000000c0001", "role": "authenticated", "is_anonymous": true}');
select throws_ok(
  $$ select public.reserve_email('{a@example.com}', 'Hi', 'Hello', 'custom', 'anonymous-1', 'h') $$,
  'P0001', 'http_403: Anonymous users cannot send email; sign up with an email address first',
  'an anonymous sign-in cannot send: 403');

select tests.authenticate_with_claims('{"sub": "00000000-0000-4000-8000-0000000c0001", "role": "authenticated"}');
select throws_ok(
  $$ select public.reserve_email('{a@example.com}', 'Hi', 'Hello', 'custom', 'anonymous-2', 'h') $$,
  'P0001', 'http_403: Anonymous users cannot send email; sign up with an email address first',
  'nor with a token that lacks the is_anonymous claim: auth.users says so');

select tests.clear_authentication();
select is(
  (select credits from public.profiles where id = '00000000-0000-4000-8000-0000000c0001'),
  300,
  'and nothing was charged');

/*
 * reserve_email: a first send
 */
insert into tests.answers
select 'first', tests.reserve_email('ada', 'k-1', '{x@example.com,y@example.com}');

select ok(
  (select (answer ->> 'mail_id')::uuid is not null from tests.answers where name = 'first'),
  'reserve_email answers with the new mail''s id');
select is(
  (select answer - 'mail_id' from tests.answers where name = 'first'),
  '{"status": "reserved", "credits_used": 2, "credits_remaining": 298, "replayed": false}'::jsonb,
  'and with its status, its price (1 per recipient) and the balance left');
select results_eq(
  $$ select user_id, status, credits_used, recipients, subject, sent_at
     from public.user_mails where id = (select (answer ->> 'mail_id')::uuid from tests.answers where name = 'first') $$,
  $$ values (tests.user_id('ada'), 'reserved', 2, '{x@example.com,y@example.com}'::text[], 'Mail k-1', null::timestamptz) $$,
  'the mail is logged as reserved, in the caller''s name');
select results_eq(
  $$ select amount, reason from public.credit_transactions
     where reference = (select answer ->> 'mail_id' from tests.answers where name = 'first') $$,
  $$ values (-2, 'email_reserve') $$,
  'the charge is in the ledger, referenced by the mail id');
select is(tests.credits('ada'), 298, 'the caller paid');
select is(tests.credits('bob'), 300, 'and nobody else did');
select ok(tests.balances_match_ledger(), 'every balance equals its ledger after a reservation');

/*
 * reserve_email: the same key again
 */
insert into tests.answers
select 'replay', tests.reserve_email('ada', 'k-1', '{x@example.com,y@example.com}');

select is(
  (select answer from tests.answers where name = 'replay'),
  (select answer || '{"replayed": true}' from tests.answers where name = 'first'),
  'the same key and request answer with the first mail, marked replayed');
select is(tests.credits('ada'), 298, 'and charge nothing more');
select is(
  (select count(*)::int from public.user_mails where user_id = tests.user_id('ada')),
  1,
  'nor log a second mail');
select throws_ok(
  $$ select tests.reserve_email('ada', 'k-1', '{x@example.com}', request_hash => 'another email') $$,
  'P0001', 'http_422: Idempotency-Key was already used with a different email',
  'the same key with another request is refused: 422');
select lives_ok(
  $$ select tests.reserve_email('bob', 'k-1') $$,
  'keys are per user: another user may use the same key');
select is(tests.credits('bob'), 299, 'and pays for their own mail');

/*
 * reserve_email: the price is the server's
 */
insert into tests.answers
select 'big', tests.reserve_email('ada', 'k-big', '{x@example.com,y@example.com,z@example.com}', repeat('x', 150 * 1024));
select is((select (answer ->> 'credits_used')::int from tests.answers where name = 'big'), 6,
  '3 recipients of a 150 KiB mail cost 3 x (1 + 1)');

insert into tests.answers
select 'template', tests.reserve_email('ada', 'k-template', content => '{"NAME": "Ada"}', mail_type => 'template',
                                       template_id => 'welcome');
select results_eq(
  $$ select mail_type, template_id, credits_used from public.user_mails
     where id = (select (answer ->> 'mail_id')::uuid from tests.answers where name = 'template') $$,
  $$ values ('template', 'welcome', 1) $$,
  'a template mail is logged with its template and priced as one');
select is(tests.credits('ada'), 291, 'ada has paid 2 + 6 + 1');

select throws_ok(
  $$ select tests.reserve_email('ada', 'k-bad-type', mail_type => 'newsletter') $$,
  'P0001', 'http_422: Unknown mail type: use custom or template',
  'a mail type without a price is refused');
select throws_ok(
  $$ select tests.reserve_email('ada', 'k-nobody', '{}') $$,
  'P0001', 'http_422: An email needs at least one recipient',
  'a mail without recipients is refused');
select throws_ok(
  $$ select tests.reserve_email('ada', 'k-bad-address', '{x@example.com,nope}') $$,
  '23514', 'new row for relation "user_mails" violates check constraint "user_mails_recipients_format"',
  'a malformed recipient is refused by the mail log''s checks');
select throws_ok(
  $$ select tests.reserve_email('ada', 'k-no-template', mail_type => 'template') $$,
  '23514', 'new row for relation "user_mails" violates check constraint "user_mails_template_id_iff_template"',
  'a template mail without a template is refused');
select throws_ok(
  $$ select tests.reserve_email('ada', '') $$,
  'P0001', 'http_422: An idempotency key and a request hash are required',
  'a blank idempotency key is refused');
select is(tests.credits('ada'), 291, 'refused mails charge nothing: the charge rolls back with them');
select ok(tests.balances_match_ledger(), 'every balance still equals its ledger');

/*
 * reserve_email: never below 0
 */
select tests.set_credits('cleo', 2);

select throws_ok(
  $$ select tests.reserve_email('cleo', 'c-three', '{a@example.com,b@example.com,c@example.com}') $$,
  'P0001', 'http_402: Not enough credits: this email costs 3, you have 2',
  'a mail that costs more than the balance is refused: 402, with the price and the balance');
select results_eq(
  $$ select tests.credits('cleo'), (select count(*)::int from public.user_mails where user_id = tests.user_id('cleo')) $$,
  $$ values (2, 0) $$,
  'and charges and logs nothing');
select is(
  (select (tests.reserve_email('cleo', 'c-two', '{a@example.com,b@example.com}') ->> 'credits_remaining')::int),
  0,
  'a mail that costs exactly the balance goes through, down to 0');
select throws_ok(
  $$ select tests.reserve_email('cleo', 'c-one') $$,
  'P0001', 'http_402: Not enough credits: this email costs 1, you have 0',
  'and with 0 left, even the cheapest mail is refused');
select is(
  (select tests.reserve_email('cleo', 'c-two', '{a@example.com,b@example.com}') ->> 'replayed'),
  'true',
  'a replay is still answered at 0 credits, since it costs nothing');
select results_eq(
  $$ select tests.credits('cleo'), tests.ledger_sum('cleo') $$,
  $$ values (0, 0) $$,
  'the balance ends at 0, never below, and equals the ledger');

/*
 * finalize_email: sent
 */
insert into tests.answers
select 'sent', tests.finalize_email(tests.mail_id('ada', 'k-1'));

select is(
  (select answer from tests.answers where name = 'sent'),
  jsonb_build_object('mail_id', tests.mail_id('ada', 'k-1'), 'status', 'sent', 'credits_used', 2,
                     'credits_remaining', 291),
  'finalize_email marks a delivered mail sent and answers with the balance');
select results_eq(
  $$ select status, provider, provider_message_id, sent_at is not null, error
     from public.user_mails where id = tests.mail_id('ada', 'k-1') $$,
  $$ values ('sent', 'resend', 'msg-' || tests.mail_id('ada', 'k-1'), true, null::text) $$,
  'with the provider, its message id and the time');
select is(tests.credits('ada'), 291, 'a delivered mail stays paid');

insert into tests.answers
select 'sent, then failed', tests.finalize_email(tests.mail_id('ada', 'k-1'), 'late failure');
select is(
  (select answer from tests.answers where name = 'sent, then failed'),
  (select answer from tests.answers where name = 'sent'),
  'finalizing a sent mail again, even as failed, changes nothing and answers its state');
select is_empty(
  $$ select 1 from public.credit_transactions where reason = 'email_refund' and reference = tests.mail_id('ada', 'k-1')::text $$,
  'and refunds nothing');
select is(
  (select tests.reserve_email('ada', 'k-1', '{x@example.com,y@example.com}') ->> 'status'),
  'sent',
  'a replay of the key now answers sent');

/*
 * finalize_email: failed, refunded once
 */
insert into tests.answers
select 'refunded', tests.finalize_email(tests.mail_id('ada', 'k-big'), 'provider 500');

select is(
  (select answer from tests.answers where name = 'refunded'),
  jsonb_build_object('mail_id', tests.mail_id('ada', 'k-big'), 'status', 'refunded', 'credits_used', 6,
                     'credits_remaining', 297),
  'a failed send is refunded: the answer says so, with the balance restored');
select results_eq(
  $$ select status, error, sent_at from public.user_mails where id = tests.mail_id('ada', 'k-big') $$,
  $$ values ('refunded', 'provider 500', null::timestamptz) $$,
  'the mail records the error and was never sent');
select results_eq(
  $$ select amount, reason from public.credit_transactions where reference = tests.mail_id('ada', 'k-big')::text
     order by amount $$,
  $$ values (-6, 'email_reserve'), (6, 'email_refund') $$,
  'the ledger holds the charge and its refund');

insert into tests.answers
select 'refunded twice', tests.finalize_email(tests.mail_id('ada', 'k-big'), 'provider 500 again');
insert into tests.answers
select 'refunded, then sent', tests.finalize_email(tests.mail_id('ada', 'k-big'));
select is(
  (select answer from tests.answers where name = 'refunded twice'),
  (select answer from tests.answers where name = 'refunded'),
  'finalizing a refunded mail again answers the same');
select is(
  (select answer from tests.answers where name = 'refunded, then sent'),
  (select answer from tests.answers where name = 'refunded'),
  'even when it now claims the mail was sent');
select is(
  (select count(*)::int from public.credit_transactions
   where reason = 'email_refund' and reference = tests.mail_id('ada', 'k-big')::text),
  1,
  'the refund happened once');
select is(tests.credits('ada'), 297, 'so ada got her 6 credits back once');
select is(
  (select tests.reserve_email('ada', 'k-big', '{x@example.com,y@example.com,z@example.com}', repeat('x', 150 * 1024))),
  (select answer || '{"replayed": true}' from tests.answers where name = 'refunded'),
  'a replay of a refunded mail answers refunded and charges nothing: a new attempt takes a new key');
select ok(tests.balances_match_ledger(), 'every balance equals its ledger after sends and refunds');

select tests.authenticate_as_service_role();
select throws_ok(
  $$ select public.finalize_email('00000000-0000-4000-8000-00000000dead', 'resend', 'sent') $$,
  'P0001', 'http_404: No such email', 'finalizing an unknown mail is a 404');
select throws_ok(
  $$ select public.finalize_email(tests.mail_id('ada', 'k-template'), ' ', 'sent') $$,
  'P0001', 'http_422: A provider is required', 'finalizing without a provider is refused');
select is(
  (select public.finalize_email(tests.mail_id('ada', 'k-template'), 'postmark', 'refunded', null, '') ->> 'status'),
  'refunded',
  'a refund without a reason is still a refund');
select tests.clear_authentication();
select is(
  (select error from public.user_mails where id = tests.mail_id('ada', 'k-template')),
  'no reason given',
  'and is recorded as having no reason given');

/*
 * grant_credits
 */
select tests.authenticate_as_service_role();

insert into tests.answers
select 'purchase', public.grant_credits(tests.user_id('bob'), 500, 'purchase', 'order-1');
select is(
  (select answer from tests.answers where name = 'purchase'),
  jsonb_build_object('user_id', tests.user_id('bob'), 'reason', 'purchase', 'reference', 'order-1',
                     'amount', 500, 'credits', 799, 'applied', true),
  'a purchase adds its credits and answers with the new balance');
select is(
  public.grant_credits(tests.user_id('bob'), 500, 'purchase', 'order-1'),
  (select answer || '{"applied": false}' from tests.answers where name = 'purchase'),
  'the same purchase again (a retried webhook) changes nothing and says so');
select throws_ok(
  $$ select public.grant_credits(tests.user_id('bob'), 900, 'purchase', 'order-1') $$,
  'P0001', 'http_409: This reference was already used for a different grant',
  'the same order with another amount is a conflict');
select throws_ok(
  $$ select public.grant_credits(tests.user_id('ada'), 500, 'purchase', 'order-1') $$,
  'P0001', 'http_409: This reference was already used for a different grant',
  'the same order for another user is a conflict');
select is(
  (public.grant_credits(tests.user_id('bob'), 100, 'renewal', 'order-1') ->> 'credits')::int,
  899,
  'a renewal is its own reason, so may share a reference with a purchase');
select is(
  (public.grant_credits(tests.user_id('bob'), -899, 'manual_adjustment', 'support-1') ->> 'credits')::int,
  0,
  'a manual adjustment may take credits, down to 0');
select throws_ok(
  $$ select public.grant_credits(tests.user_id('bob'), -1, 'manual_adjustment', 'support-2') $$,
  'P0001', 'http_422: This adjustment would make the balance negative: the user has 0 credits',
  'but never below 0');
select throws_ok(
  $$ select public.grant_credits(tests.user_id('bob'), -5, 'purchase', 'order-2') $$,
  'P0001', 'http_422: A purchase or renewal must add credits',
  'a purchase cannot take credits');
select throws_ok(
  $$ select public.grant_credits(tests.user_id('bob'), 0, 'purchase', 'order-3') $$,
  'P0001', 'http_422: The amount must not be zero',
  'a grant of 0 is refused');
select throws_ok(
  $$ select public.grant_credits(tests.user_id('bob'), 300, 'signup_grant', 'again') $$,
  'P0001', 'http_422: Credits can only be granted for a purchase, a renewal or a manual adjustment',
  'signup grants, reservations and refunds are not for grant_credits');
select throws_ok(
  $$ select public.grant_credits(tests.user_id('bob'), 5, 'email_refund', tests.mail_id('ada', 'k-1')::text) $$,
  'P0001', 'http_422: Credits can only be granted for a purchase, a renewal or a manual adjustment',
  'so not even service code can refund a sent mail through it');
select throws_ok(
  $$ select public.grant_credits(tests.user_id('bob'), 5, 'purchase', '  ') $$,
  'P0001', 'http_422: A reference is required',
  'a grant names what it is for');
select throws_ok(
  $$ select public.grant_credits('00000000-0000-4000-8000-00000000dead', 5, 'purchase', 'order-ghost') $$,
  'P0001', 'http_404: No such user',
  'a grant for an unknown user is a 404');
select tests.clear_authentication();
select results_eq(
  $$ select tests.credits('bob'), tests.ledger_sum('bob') $$,
  $$ values (0, 0) $$,
  'bob''s balance equals his ledger after grants, repeats and refusals');

/*
 * A user cannot change their own balance around these functions
 */
select tests.authenticate_as('cleo');
select tests.denied(
  $$ update public.profiles set credits = 1000 $$,
  'profiles', 'a user cannot top up their own credits');
select tests.denied(
  $$ insert into public.credit_transactions (user_id, amount, reason, reference)
     values (tests.user_id('cleo'), 1000, 'purchase', 'forged-order') $$,
  'credit_transactions', 'nor forge a purchase');
select throws_ok(
  $$ select kit.post_credit_transaction(tests.user_id('cleo'), 1000, 'purchase', 'forged-order') $$,
  '42501', 'permission denied for schema kit', 'nor post to the ledger directly');
select tests.clear_authentication();

select ok(tests.balances_match_ledger(), 'in the end, every balance equals its ledger');
select is_empty(
  $$ select p.id from public.profiles p
     where p.credits <> coalesce((select sum(t.amount) from public.credit_transactions t where t.user_id = p.id), 0) $$,
  'for every profile in the database, seeded ones included');

select * from finish();
rollback;
