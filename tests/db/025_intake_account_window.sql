-- What spends an account's rate-limit window, and the account's category
-- and priority rules as field errors before the captcha.
--
-- An account's window is its whole form's budget: one address sending junk
-- must not be able to fill it. intake_begin counts only the client's IP
-- window and reads the account's; intake_submit, which runs only after the
-- captcha passed, takes one slot per ticket it creates. Every call runs as
-- service_role, as the ticket-intake Worker makes it. The transaction fixes
-- now(), so every call here falls in one window.
begin;
create extension if not exists pgtap;
\ir _helpers.psql

do $$
begin
  perform tests.create_user('owner');
  perform tests.create_team_account('owner', 'burst');
  perform tests.create_team_account('owner', 'open');

  -- 2 per IP and 3 per account a minute; restricted categories and priorities.
  insert into public.ticket_intakes (
    account_id, intake_key, allowed_categories, allowed_priorities, rate_limit_per_ip, rate_limit_per_account
  )
  values (tests.account_id('burst'), 'burst-form', '{general,billing}', '{low,medium}', 2, 3);
  -- Everything left at its default.
  perform tests.create_intake(tests.account_id('open'), 'open-form');
end
$$;

-- The slots taken in the account's window, over all windows.
create function tests.account_hits(account_id uuid)
returns int
language sql
stable
as $$
  select coalesce(sum(c.hits), 0)::int
  from kit.intake_rate_counters c
  where c.bucket = 'account:' || account_hits.account_id;
$$;

-- What a call left behind on an account: {tickets, messages, submissions}.
create function tests.intake_rows(account_id uuid)
returns int[]
language sql
stable
as $$
  select array[
    (select count(*)::int from public.tickets t where t.account_id = intake_rows.account_id),
    (select count(*)::int from public.messages m join public.tickets t on t.id = m.ticket_id
     where t.account_id = intake_rows.account_id),
    (select count(*)::int from public.ticket_intake_submissions s where s.account_id = intake_rows.account_id)
  ];
$$;

-- A submission to burst-form as the Worker makes it after the captcha.
create function tests.submit(token text, idempotency_key text default null, category text default null)
returns jsonb
language sql
as $$
  select public.intake_submit(
    p_intake_key => 'burst-form',
    p_title => 'Printer on fire',
    p_content => 'It is really on fire.',
    p_customer_email => 'casey@customer.example',
    p_captcha_token_hash => encode(sha256(convert_to(submit.token, 'utf8')), 'hex'),
    p_category => submit.category,
    p_idempotency_key => submit.idempotency_key,
    p_request_hash => case when submit.idempotency_key is not null then 'request-1' end,
    p_client_ip => '198.51.100.50'
  );
$$;

create table tests.answers (
  name text primary key,
  answer jsonb not null
);

grant execute on all functions in schema tests to service_role;
grant select, insert on table tests.answers to service_role;

select plan(25);

/*
 * A burst from one address
 */
select tests.authenticate_as_service_role();

insert into tests.answers
select 'burst ' || n, public.intake_begin(p_intake_key => 'burst-form', p_client_ip => '198.51.100.1')
from generate_series(1, 20) as n;

select is(
  (select count(*)::int from tests.answers where name like 'burst %' and answer -> 'retry_after' <> 'null'),
  18,
  'a burst of 20 from one address is limited after its first 2');

select tests.clear_authentication();
select is(tests.account_hits(tests.account_id('burst')), 0,
  'the burst, limited or not, spends nothing of the account''s window');
select tests.authenticate_as_service_role();

select is(
  public.intake_begin(p_intake_key => 'burst-form', p_client_ip => '198.51.100.2') -> 'retry_after',
  'null'::jsonb,
  'a visitor from another address is not limited by the burst');

/*
 * Tickets, and only tickets, take slots
 */
insert into tests.answers select 'first', tests.submit('token-1', 'idem-1');

select tests.clear_authentication();
select is(tests.account_hits(tests.account_id('burst')), 1, 'a ticket takes one slot of the account''s window');
select tests.authenticate_as_service_role();

select throws_ok(
  $$ select tests.submit('token-1') $$,
  'P0001', 'http_409: This captcha token was already used',
  'a submission with a used captcha token is refused');
select throws_ok(
  $$ select tests.submit('token-2', category => 'bugs') $$,
  'P0001', 'http_422: This form does not accept that category',
  'a submission with a category the form does not accept is refused');
select is(
  tests.submit('token-3', 'idem-1') - 'created',
  (select answer - 'created' from tests.answers where name = 'first'),
  'a retry with the same idempotency key replays the first ticket');

select tests.clear_authentication();
select is(tests.account_hits(tests.account_id('burst')), 1,
  'refused submissions and replays take no slot');
select tests.authenticate_as_service_role();

insert into tests.answers select 'second', tests.submit('token-4');
insert into tests.answers select 'third', tests.submit('token-5');

select is(
  (select array_agg((answer ->> 'created')::boolean order by name) from tests.answers where name in ('second', 'third')),
  array[true, true],
  'the second and third tickets fill the window');

/*
 * A full window
 */
insert into tests.answers
select 'begin when full', public.intake_begin(p_intake_key => 'burst-form', p_client_ip => '198.51.100.3');

select ok(
  ((select answer ->> 'retry_after' from tests.answers where name = 'begin when full')::int) between 1 and 60,
  'once the window holds rate_limit_per_account tickets, intake_begin answers retry_after, before any captcha is spent');

select tests.clear_authentication();
select is(tests.account_hits(tests.account_id('burst')), 3, 'intake_begin only reads the account''s window');
select tests.authenticate_as_service_role();

insert into tests.answers select 'fourth', tests.submit('token-6');

select is(
  (select array_agg(key order by key) from tests.answers, jsonb_object_keys(answer) as key where name = 'fourth'),
  array['retry_after'],
  'a ticket past the account''s limit (requests that passed intake_begin together) is answered with retry_after only');
select ok(
  ((select answer ->> 'retry_after' from tests.answers where name = 'fourth')::int) between 1 and 60,
  'retry_after is the seconds left in the window');

select tests.clear_authentication();
select is(tests.intake_rows(tests.account_id('burst')), array[3, 3, 3],
  'and nothing of it is written');
select is_empty(
  $$ select 1 from public.ticket_intake_submissions where captcha_token_hash = encode(sha256('token-6'), 'hex') $$,
  'its captcha token is not recorded as used');
select is(tests.account_hits(tests.account_id('burst')), 3, 'and the window is not counted past its limit');
select tests.authenticate_as_service_role();

select is(
  tests.submit('token-7', 'idem-1') ->> 'reference',
  (select answer ->> 'reference' from tests.answers where name = 'first'),
  'a replay is answered even when the window is full');

/*
 * The account's category and priority rules, answered before the captcha
 */
select is(
  public.intake_begin('burst-form', '198.51.100.4', p_category => 'bugs', p_priority => 'high') -> 'errors',
  '[{"field": "category", "message": "must be one of: general, billing"},
    {"field": "priority", "message": "must be one of: low, medium"}]'::jsonb,
  'intake_begin lists a category and a priority the form does not accept as field errors');
select is(
  public.intake_begin('burst-form', '198.51.100.4', p_category => 'billing', p_priority => 'low') -> 'errors',
  '[]'::jsonb,
  'an accepted category and priority have no errors');
select is(
  public.intake_begin('burst-form', '198.51.100.4', p_category => '  ') -> 'errors',
  '[]'::jsonb,
  'a blank category and no priority take the defaults, which are accepted');
select is(
  public.intake_begin('burst-form', '198.51.100.4', p_priority => 'high') -> 'errors',
  '[{"field": "priority", "message": "must be one of: low, medium"}]'::jsonb,
  'each rule is reported on its own');
select is(
  public.intake_begin('open-form', '198.51.100.4', p_category => 'feature requests', p_priority => 'high') -> 'errors',
  '[]'::jsonb,
  'a form without restrictions accepts any category and every priority');
select throws_ok(
  $$ select public.intake_submit('burst-form', 'Urgent', 'Urgent', 'casey@customer.example',
       encode(sha256('token-8'), 'hex'), p_priority => 'high') $$,
  'P0001', 'http_422: This form does not accept that priority',
  'intake_submit still refuses them, as the last line of defence');

/*
 * One intake_begin for PostgREST to call
 */
select hasnt_function('public', 'intake_begin', array['text', 'text', 'text', 'text'],
  'the four-argument intake_begin is gone, so a call cannot be ambiguous');
select function_privs_are('public', 'intake_begin',
  array['text', 'text', 'text', 'text', 'text', 'ticket_priority'], 'service_role',
  array['EXECUTE'], 'service_role can call the new intake_begin');

select tests.clear_authentication();

select * from finish();
rollback;
