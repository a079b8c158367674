-- public.intake_begin and public.intake_submit: who may call them, the
-- settings and replays intake_begin answers with, its fixed-window rate
-- limits, and that intake_submit writes one ticket, one message and one
-- submission per accepted form post and nothing at all otherwise. Every
-- call runs as service_role, as the ticket-intake Worker makes it.
begin;
create extension if not exists pgtap;
\ir _helpers.psql

do $$
begin
  perform tests.create_user('owner');
  perform tests.create_team_account('owner', 'team');
  perform tests.create_team_account('owner', 'other');
  perform tests.create_team_account('owner', 'shut');

  -- Restricted, with small limits: 2 per IP and 4 per account a minute.
  insert into public.ticket_intakes (
    account_id, intake_key, allowed_origins, allowed_categories, allowed_priorities,
    thank_you_url, rate_limit_per_ip, rate_limit_per_account
  )
  values (
    tests.account_id('team'), 'team-form', '{https://team.example}', '{general,billing}', '{low,medium}',
    'https://team.example/thanks', 2, 4
  );
  -- Everything left at its default.
  perform tests.create_intake(tests.account_id('other'), 'other-form');
  -- Switched off.
  insert into public.ticket_intakes (account_id, intake_key, enabled)
  values (tests.account_id('shut'), 'shut-form', false);
end
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

-- The hits counted for the whole account, over all windows.
create function tests.account_hits(account_id uuid)
returns int
language sql
stable
as $$
  select coalesce(sum(c.hits), 0)::int
  from kit.intake_rate_counters c
  where c.bucket = 'account:' || account_hits.account_id;
$$;

-- The answers of calls made in one role and inspected in another.
create table tests.answers (
  name text primary key,
  answer jsonb not null
);

grant execute on function tests.intake_rows(uuid) to service_role;
grant select, insert on table tests.answers to service_role;
grant select on table tests.answers to authenticated;

select plan(79);

/*
 * Who may call them: service_role only
 */
select has_function('public', 'intake_begin', array['text', 'text', 'text', 'text', 'text', 'ticket_priority'],
  'intake_begin(p_intake_key, p_client_ip, p_idempotency_key, p_request_hash, p_category, p_priority) exists');
select has_function('public', 'intake_submit',
  array['text', 'text', 'text', 'text', 'text', 'text', 'text', 'ticket_priority', 'text', 'text', 'text'],
  'intake_submit(p_intake_key, p_title, p_content, p_customer_email, p_captcha_token_hash, ...) exists');
select function_returns('public', 'intake_begin', array['text', 'text', 'text', 'text', 'text', 'ticket_priority'], 'jsonb',
  'intake_begin returns jsonb');
select function_returns('public', 'intake_submit',
  array['text', 'text', 'text', 'text', 'text', 'text', 'text', 'ticket_priority', 'text', 'text', 'text'], 'jsonb',
  'intake_submit returns jsonb');
select is_definer('public', 'intake_begin', array['text', 'text', 'text', 'text', 'text', 'ticket_priority'],
  'intake_begin runs as its owner, to reach the rate counters in kit');
select is_definer('public', 'intake_submit',
  array['text', 'text', 'text', 'text', 'text', 'text', 'text', 'ticket_priority', 'text', 'text', 'text'],
  'intake_submit runs as its owner, to use the intake helpers in kit');

select function_privs_are('public', 'intake_begin', array['text', 'text', 'text', 'text', 'text', 'ticket_priority'], 'anon',
  array[]::text[], 'anon cannot call intake_begin');
select function_privs_are('public', 'intake_begin', array['text', 'text', 'text', 'text', 'text', 'ticket_priority'], 'authenticated',
  array[]::text[], 'authenticated cannot call intake_begin');
select function_privs_are('public', 'intake_begin', array['text', 'text', 'text', 'text', 'text', 'ticket_priority'], 'service_role',
  array['EXECUTE'], 'service_role can call intake_begin');
select function_privs_are('public', 'intake_submit',
  array['text', 'text', 'text', 'text', 'text', 'text', 'text', 'ticket_priority', 'text', 'text', 'text'], 'anon',
  array[]::text[], 'anon cannot call intake_submit');
select function_privs_are('public', 'intake_submit',
  array['text', 'text', 'text', 'text', 'text', 'text', 'text', 'ticket_priority', 'text', 'text', 'text'], 'authenticated',
  array[]::text[], 'authenticated cannot call intake_submit');
select function_privs_are('public', 'intake_submit',
  array['text', 'text', 'text', 'text', 'text', 'text', 'text', 'ticket_priority', 'text', 'text', 'text'], 'service_role',
  array['EXECUTE'], 'service_role can call intake_submit');

select tests.authenticate_as_anon();

select throws_ok(
  $$ select public.intake_begin('team-form', '198.51.100.1') $$,
  '42501', 'permission denied for function intake_begin',
  'anon cannot call intake_begin, the form must go through the Worker');
select throws_ok(
  $$ select public.intake_submit('team-form', 'Spam', 'Spam', 'spam@example.com', encode(sha256('anon'), 'hex')) $$,
  '42501', 'permission denied for function intake_submit',
  'anon cannot call intake_submit and skip the captcha');

select tests.authenticate_as('owner');

select throws_ok(
  $$ select public.intake_begin('team-form', '198.51.100.1') $$,
  '42501', 'permission denied for function intake_begin',
  'a signed-in user cannot call intake_begin, not even the intake''s owner');
select throws_ok(
  $$ select public.intake_submit('team-form', 'Mine', 'Mine', 'owner@example.com', encode(sha256('owner'), 'hex')) $$,
  '42501', 'permission denied for function intake_submit',
  'a signed-in user cannot call intake_submit, not even the intake''s owner');

/*
 * Unknown and disabled keys
 */
select tests.authenticate_as_service_role();

select throws_ok(
  $$ select public.intake_begin('no-such-form', '198.51.100.1') $$,
  'P0001', 'http_404: Unknown or disabled intake key',
  'intake_begin answers 404 for an unknown key');
select throws_ok(
  $$ select public.intake_begin('shut-form', '198.51.100.1') $$,
  'P0001', 'http_404: Unknown or disabled intake key',
  'intake_begin answers the same 404 for a disabled intake');
select throws_ok(
  $$ select public.intake_submit('no-such-form', 'Hello', 'Hello', 'c@customer.example', encode(sha256('t-404'), 'hex')) $$,
  'P0001', 'http_404: Unknown or disabled intake key',
  'intake_submit answers 404 for an unknown key');
select throws_ok(
  $$ select public.intake_submit('shut-form', 'Hello', 'Hello', 'c@customer.example', encode(sha256('t-404'), 'hex')) $$,
  'P0001', 'http_404: Unknown or disabled intake key',
  'intake_submit answers 404 for an intake disabled since intake_begin');
select is(tests.intake_rows(tests.account_id('shut')), array[0, 0, 0],
  'a disabled intake creates no ticket, message or submission');

/*
 * intake_begin: the settings
 */
insert into tests.answers
select 'first begin', public.intake_begin('team-form', '198.51.100.1');

select is(
  (select answer from tests.answers where name = 'first begin'),
  jsonb_build_object(
    'account_id', tests.account_id('team'),
    'allowed_origins', jsonb_build_array('https://team.example'),
    'default_category', 'general',
    'allowed_categories', jsonb_build_array('general', 'billing'),
    'default_priority', 'medium',
    'allowed_priorities', jsonb_build_array('low', 'medium'),
    'thank_you_url', 'https://team.example/thanks',
    'retry_after', null,
    'replay', null,
    'errors', jsonb_build_array()
  ),
  'intake_begin answers with the intake''s settings, no retry_after, no replay and no field errors');
select is(
  public.intake_begin('other-form', '198.51.100.1'),
  jsonb_build_object(
    'account_id', tests.account_id('other'),
    'allowed_origins', jsonb_build_array(),
    'default_category', 'general',
    'allowed_categories', null,
    'default_priority', 'medium',
    'allowed_priorities', jsonb_build_array('low', 'medium', 'high'),
    'thank_you_url', null,
    'retry_after', null,
    'replay', null,
    'errors', jsonb_build_array()
  ),
  'an intake with defaults answers null for any category and for the built-in thank-you page');

/*
 * intake_begin: fixed-window rate limits (team-form: 2 per IP, 4 per account)
 */
select is(
  public.intake_begin('team-form', '198.51.100.1') -> 'retry_after',
  'null'::jsonb,
  'the second request from an IP in a window passes');
insert into tests.answers
select 'ip limited', public.intake_begin('team-form', '198.51.100.1');
select ok(
  ((select answer from tests.answers where name = 'ip limited') ->> 'retry_after')::int between 1 and 60,
  'the third request from the same IP gets retry_after: the seconds left in the 60-second window');
select is(
  public.intake_begin('team-form', '198.51.100.2') -> 'retry_after',
  'null'::jsonb,
  'another IP still passes while the first is limited');
select is(
  public.intake_begin('team-form', '198.51.100.3') -> 'retry_after',
  'null'::jsonb,
  'a fifth request to the account passes: its window counts tickets, not requests (see 025)');
select is(
  (select answer - 'retry_after' from tests.answers where name = 'ip limited'),
  (select answer - 'retry_after' from tests.answers where name = 'first begin'),
  'a limited request still gets the settings, so the Worker can answer it properly');
select is(
  public.intake_begin('other-form', '198.51.100.1') -> 'retry_after',
  'null'::jsonb,
  'another account''s intake has its own buckets');

select tests.clear_authentication();

select set_eq(
  $$ select bucket, hits from kit.intake_rate_counters
     where bucket like '%' || tests.account_id('team') || '%' $$,
  $$ values ('ip:' || tests.account_id('team') || ':198.51.100.1', 3),
            ('ip:' || tests.account_id('team') || ':198.51.100.2', 1),
            ('ip:' || tests.account_id('team') || ':198.51.100.3', 1) $$,
  'every request was counted in its IP bucket, the limited ones too, in one window, and none in the account''s');
select results_eq(
  $$ select distinct window_start, expires_at from kit.intake_rate_counters
     where bucket like '%' || tests.account_id('team') || '%' $$,
  $$ values (to_timestamp(floor(extract(epoch from now()) / 60) * 60),
             to_timestamp(floor(extract(epoch from now()) / 60) * 60) + interval '60 seconds') $$,
  'the window is the current minute, aligned to the epoch');

-- An expired window of someone else's, and a new address family.
insert into kit.intake_rate_counters (bucket, window_start, expires_at, hits)
values ('ip:00000000-0000-4000-8000-000000000000:192.0.2.1', now() - interval '2 hours', now() - interval '1 hour', 9),
-- ... and one that ended a moment ago, which a transaction begun inside it
-- may still count into.
       ('ip:00000000-0000-4000-8000-000000000000:192.0.2.2', now() - interval '61 seconds', now() - interval '1 second', 21);

select tests.authenticate_as_service_role();
do $$
begin
  perform public.intake_begin('other-form', '2001:db8:1:2::1');
  perform public.intake_begin('other-form', '2001:DB8:1:2:ffff::9');
  perform public.intake_begin('other-form', '2001:db8:1:3::1');
  perform public.intake_begin('other-form', null);
  perform public.intake_begin('other-form', ' 192.0.2.7 ');
end
$$;
select tests.clear_authentication();

select is_empty(
  $$ select 1 from kit.intake_rate_counters where expires_at <= now() - interval '10 minutes' $$,
  'intake_begin deletes long-expired windows as it goes');
select results_eq(
  $$ select hits from kit.intake_rate_counters
     where bucket = 'ip:00000000-0000-4000-8000-000000000000:192.0.2.2' $$,
  $$ values (21) $$,
  'a window that ended a moment ago is kept: deleting it would let a request begun inside it start it again at one hit');
select set_eq(
  $$ select bucket, hits from kit.intake_rate_counters
     where bucket like 'ip:' || tests.account_id('other') || ':%' $$,
  $$ values ('ip:' || tests.account_id('other') || ':192.0.2.7', 1),
            ('ip:' || tests.account_id('other') || ':198.51.100.1', 2),
            ('ip:' || tests.account_id('other') || ':2001:db8:1:2::/64', 2),
            ('ip:' || tests.account_id('other') || ':2001:db8:1:3::/64', 1),
            ('ip:' || tests.account_id('other') || ':unknown', 1) $$,
  'IPv6 clients are counted per /64, a missing IP as unknown, and addresses in their canonical form');

/*
 * intake_submit: an accepted submission
 */
select tests.authenticate_as_service_role();

insert into tests.answers
select 'first submit', public.intake_submit(
  p_intake_key => 'team-form',
  p_title => '  Printer on fire ',
  p_content => 'It is really on fire.',
  p_customer_email => ' casey@customer.example ',
  p_captcha_token_hash => encode(sha256('token-1'), 'hex'),
  p_customer_name => 'Casey Customer',
  p_idempotency_key => 'idem-1',
  p_request_hash => 'request-1',
  p_client_ip => '198.51.100.1'
);

select is(
  (select array_agg(key order by key) from tests.answers, jsonb_object_keys(answer) as key where name = 'first submit'),
  array['created', 'reference', 'thank_you_url', 'ticket_id'],
  'intake_submit answers with ticket_id, reference, created and thank_you_url');
select is(
  (select answer - 'ticket_id' - 'reference' from tests.answers where name = 'first submit'),
  '{"created": true, "thank_you_url": "https://team.example/thanks"}'::jsonb,
  'a new submission is created and comes with the intake''s thank-you page');
select is(tests.intake_rows(tests.account_id('team')), array[1, 1, 1],
  'an accepted submission writes exactly one ticket, one message and one submission');
select results_eq(
  $$ select t.id, t.reference, t.title::text, t.category::text, t.priority::text, t.status::text,
            t.customer_email::text, t.customer_name::text
     from public.tickets t where t.account_id = tests.account_id('team') $$,
  $$ select (answer ->> 'ticket_id')::uuid, answer ->> 'reference', 'Printer on fire', 'general', 'medium', 'open',
            'casey@customer.example', 'Casey Customer'
     from tests.answers where name = 'first submit' $$,
  'the ticket has the trimmed title and email, the default category and priority, and is open');
select results_eq(
  $$ select m.author::text, m.author_account_id, m.content::text
     from public.messages m join public.tickets t on t.id = m.ticket_id
     where t.account_id = tests.account_id('team') $$,
  $$ values ('customer', null::uuid, 'It is really on fire.') $$,
  'the ticket''s first message is the customer''s, as written');
select results_eq(
  $$ select s.ticket_id, s.idempotency_key, s.request_hash, s.captcha_token_hash, s.client_ip
     from public.ticket_intake_submissions s where s.account_id = tests.account_id('team') $$,
  $$ select (answer ->> 'ticket_id')::uuid, 'idem-1', 'request-1', encode(sha256('token-1'), 'hex'), '198.51.100.1'
     from tests.answers where name = 'first submit' $$,
  'the submission records the key, the request hash, the captcha token''s hash and the IP');

/*
 * Idempotent replays
 */
insert into tests.answers
select 'replayed submit', public.intake_submit(
  p_intake_key => 'team-form',
  p_title => 'Printer on fire',
  p_content => 'It is really on fire.',
  p_customer_email => 'casey@customer.example',
  p_captcha_token_hash => encode(sha256('token-2'), 'hex'),
  p_idempotency_key => 'idem-1',
  p_request_hash => 'request-1'
);

select is(
  (select answer from tests.answers where name = 'replayed submit'),
  (select jsonb_set(answer, '{created}', 'false') from tests.answers where name = 'first submit'),
  'a retried submission answers with the same ticket and created: false');
select is(tests.intake_rows(tests.account_id('team')), array[1, 1, 1],
  'a retried submission writes nothing');
select is_empty(
  $$ select 1 from public.ticket_intake_submissions where captcha_token_hash = encode(sha256('token-2'), 'hex') $$,
  'a retried submission does not use up its captcha token');

select tests.clear_authentication();
select tests.account_hits(tests.account_id('team')) as account_hits_before_replay \gset
select tests.authenticate_as_service_role();

select is(
  public.intake_begin('team-form', '198.51.100.9', 'idem-1', 'request-1') -> 'replay',
  (select jsonb_build_object('ticket_id', answer -> 'ticket_id', 'reference', answer -> 'reference')
   from tests.answers where name = 'first submit'),
  'intake_begin recognises a retry and answers with the ticket it created');
select is(
  public.intake_begin('team-form', '198.51.100.1', 'idem-1', 'request-1') -> 'retry_after',
  'null'::jsonb,
  'a retry is not rate limited, though its IP is over its limit');

select tests.clear_authentication();
select is(
  tests.account_hits(tests.account_id('team')),
  :account_hits_before_replay,
  'a retry counts no hit');
select tests.authenticate_as_service_role();

select throws_ok(
  $$ select public.intake_begin('team-form', '198.51.100.9', 'idem-1', 'request-2') $$,
  'P0001', 'http_422: Idempotency-Key was already used with a different submission',
  'intake_begin refuses an idempotency key reused for a different submission');
select throws_ok(
  $$ select public.intake_submit('team-form', 'Other', 'Other', 'casey@customer.example',
       encode(sha256('token-3'), 'hex'), p_idempotency_key => 'idem-1', p_request_hash => 'request-2') $$,
  'P0001', 'http_422: Idempotency-Key was already used with a different submission',
  'intake_submit refuses it too');
select throws_ok(
  $$ select public.intake_submit('team-form', 'Other', 'Other', 'casey@customer.example',
       encode(sha256('token-3'), 'hex'), p_idempotency_key => 'idem-1') $$,
  'P0001', 'http_422: Idempotency-Key was already used with a different submission',
  'a reused key without a request hash does not match one with a hash');
select is(tests.intake_rows(tests.account_id('team')), array[1, 1, 1],
  'a refused key writes nothing');
select lives_ok(
  $$ insert into tests.answers
     select 'other account same key', public.intake_submit('other-form', 'Other', 'Other', 'casey@customer.example',
       encode(sha256('token-4'), 'hex'), p_idempotency_key => 'idem-1', p_request_hash => 'request-2') $$,
  'another account''s intake accepts the same idempotency key');
select isnt(
  (select answer ->> 'ticket_id' from tests.answers where name = 'other account same key'),
  (select answer ->> 'ticket_id' from tests.answers where name = 'first submit'),
  'and creates its own ticket');

insert into tests.answers
select 'no hash', public.intake_submit('other-form', 'No hash', 'No hash', 'casey@customer.example',
  encode(sha256('token-5'), 'hex'), p_idempotency_key => 'idem-2');
select is(
  public.intake_submit('other-form', 'No hash', 'No hash', 'casey@customer.example',
    encode(sha256('token-6'), 'hex'), p_idempotency_key => 'idem-2') ->> 'ticket_id',
  (select answer ->> 'ticket_id' from tests.answers where name = 'no hash'),
  'two requests with the same key and no request hash are the same submission');

/*
 * One-time captcha tokens
 */
select throws_ok(
  $$ select public.intake_submit('team-form', 'Again', 'Again', 'casey@customer.example',
       encode(sha256('token-1'), 'hex')) $$,
  'P0001', 'http_409: This captcha token was already used',
  'a captcha token already used is refused');
select throws_ok(
  $$ select public.intake_submit('team-form', 'Again', 'Again', 'casey@customer.example',
       encode(sha256('token-1'), 'hex'), p_idempotency_key => 'idem-new', p_request_hash => 'request-new') $$,
  'P0001', 'http_409: This captcha token was already used',
  'a used captcha token is refused under a fresh idempotency key too');
select throws_ok(
  $$ select public.intake_submit('other-form', 'Again', 'Again', 'casey@customer.example',
       encode(sha256('token-1'), 'hex')) $$,
  'P0001', 'http_409: This captcha token was already used',
  'a captcha token used on one intake is refused on another');
select is(tests.intake_rows(tests.account_id('team')), array[1, 1, 1],
  'a refused captcha token writes nothing');
select throws_ok(
  $$ select public.intake_submit('team-form', 'Raw token', 'Raw token', 'casey@customer.example', 'token-7') $$,
  '23514', 'new row for relation "ticket_intake_submissions" violates check constraint "ticket_intake_submissions_captcha_token_hash_format"',
  'a captcha token passed instead of its hash is refused');
select throws_ok(
  $$ select public.intake_submit('team-form', 'No token', 'No token', 'casey@customer.example', null) $$,
  '23502', null,
  'a submission without a captcha token hash is refused');

/*
 * Validation: categories, priorities, required fields
 */
select throws_ok(
  $$ select public.intake_submit('team-form', 'Bug', 'Bug', 'casey@customer.example',
       encode(sha256('token-8'), 'hex'), p_category => 'bugs') $$,
  'P0001', 'http_422: This form does not accept that category',
  'a category outside the allowed ones is refused');
select throws_ok(
  $$ select public.intake_submit('team-form', 'Urgent', 'Urgent', 'casey@customer.example',
       encode(sha256('token-8'), 'hex'), p_priority => 'high') $$,
  'P0001', 'http_422: This form does not accept that priority',
  'a priority outside the allowed ones is refused');
select throws_ok(
  $$ select public.intake_submit('team-form', 'Anonymous', 'Anonymous', '  ', encode(sha256('token-8'), 'hex')) $$,
  'P0001', 'http_422: A customer email is required',
  'a blank customer email is refused');
select throws_ok(
  $$ select public.intake_submit('team-form', 'Anonymous', 'Anonymous', null, encode(sha256('token-8'), 'hex')) $$,
  'P0001', 'http_422: A customer email is required',
  'a missing customer email is refused');
select throws_ok(
  $$ select public.intake_submit('team-form', 'Bad email', 'Bad email', 'not-an-address', encode(sha256('token-8'), 'hex')) $$,
  '23514', 'new row for relation "tickets" violates check constraint "tickets_customer_email_format"',
  'an email that is no address is refused');
select throws_ok(
  $$ select public.intake_submit('team-form', '   ', 'No title', 'casey@customer.example', encode(sha256('token-8'), 'hex')) $$,
  '23514', 'new row for relation "tickets" violates check constraint "tickets_title_not_blank"',
  'a blank title is refused');
select throws_ok(
  $$ select public.intake_submit('team-form', 'No message', ' ', 'casey@customer.example', encode(sha256('token-8'), 'hex')) $$,
  '23514', 'new row for relation "messages" violates check constraint "messages_content_not_blank"',
  'a blank message is refused, and takes its ticket with it');
select throws_ok(
  $$ select public.intake_submit('team-form', repeat('t', 256), 'Long', 'casey@customer.example', encode(sha256('token-8'), 'hex')) $$,
  '22001', 'value too long for type character varying(255)',
  'a title over 255 characters is refused');
select is(tests.intake_rows(tests.account_id('team')), array[1, 1, 1],
  'refused submissions write nothing');
select is_empty(
  $$ select 1 from public.ticket_intake_submissions where captcha_token_hash = encode(sha256('token-8'), 'hex') $$,
  'and do not use up their captcha token');

insert into tests.answers
select 'chosen', public.intake_submit('team-form', 'Invoice', 'Wrong amount', 'casey@customer.example',
  encode(sha256('token-8'), 'hex'), p_category => 'billing', p_priority => 'low');
insert into tests.answers
select 'blank category', public.intake_submit('team-form', 'Hm', 'Hm', 'casey@customer.example',
  encode(sha256('token-9'), 'hex'), p_category => '  ', p_customer_name => '  ');
insert into tests.answers
select 'anything goes', public.intake_submit('other-form', 'Anything', 'Anything', 'casey@customer.example',
  encode(sha256('token-10'), 'hex'), p_category => 'feature requests', p_priority => 'high');

select results_eq(
  $$ select t.category::text, t.priority::text from public.tickets t
     join tests.answers a on (a.answer ->> 'ticket_id')::uuid = t.id where a.name = 'chosen' $$,
  $$ values ('billing', 'low') $$,
  'an allowed category and priority are taken as chosen');
select results_eq(
  $$ select t.category::text, t.customer_name::text from public.tickets t
     join tests.answers a on (a.answer ->> 'ticket_id')::uuid = t.id where a.name = 'blank category' $$,
  $$ values ('general', null::text) $$,
  'a blank category takes the default and a blank name is stored as none');
select results_eq(
  $$ select t.category::text, t.priority::text from public.tickets t
     join tests.answers a on (a.answer ->> 'ticket_id')::uuid = t.id where a.name = 'anything goes' $$,
  $$ values ('feature requests', 'high') $$,
  'an intake without restrictions takes any category and every priority');
select is(
  (select answer -> 'thank_you_url' from tests.answers where name = 'anything goes'),
  'null'::jsonb,
  'an intake without a thank-you page answers thank_you_url: null');

insert into tests.answers
select 'no key 1', public.intake_submit('other-form', 'Twice', 'Twice', 'casey@customer.example', encode(sha256('token-11'), 'hex'));
insert into tests.answers
select 'no key 2', public.intake_submit('other-form', 'Twice', 'Twice', 'casey@customer.example', encode(sha256('token-12'), 'hex'));

select isnt(
  (select answer ->> 'ticket_id' from tests.answers where name = 'no key 1'),
  (select answer ->> 'ticket_id' from tests.answers where name = 'no key 2'),
  'without an idempotency key, two posts with two captcha tokens are two tickets');

select is(tests.intake_rows(tests.account_id('team')), array[3, 3, 3],
  'the team got one ticket, message and submission per accepted post');
select is(tests.intake_rows(tests.account_id('other')), array[5, 5, 5],
  'so did the other account');
select is_empty(
  $$ select 1 from public.tickets t where t.account_id in (tests.account_id('team'), tests.account_id('other'))
     and not exists (select 1 from public.messages m where m.ticket_id = t.id and m.author = 'customer') $$,
  'every ticket the intake created starts with the customer''s message');

select tests.clear_authentication();

/*
 * The members see what the intake created
 */
select tests.authenticate_as('owner');

select results_eq(
  $$ select reference from public.tickets where title = 'Printer on fire' $$,
  $$ select answer ->> 'reference' from tests.answers where name = 'first submit' $$,
  'the team''s owner reads the ticket under the reference the customer was given');
select tests.denied(
  $$ select * from public.ticket_intake_submissions $$,
  'ticket_intake_submissions', 'but not the intake''s bookkeeping');

select * from finish();
rollback;
