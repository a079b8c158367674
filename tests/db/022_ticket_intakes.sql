-- public.ticket_intakes (an account's public form settings), the private
-- public.ticket_intake_submissions and kit.intake_rate_counters: structure,
-- who may read and write them (anon, an outsider, a member, the owner,
-- service_role), and the constraints that keep a misconfigured form from
-- being saved.
begin;
create extension if not exists pgtap;
\ir _helpers.psql

do $$
begin
  perform tests.create_user('owner');
  perform tests.create_user('member');
  perform tests.create_user('outsider');
  perform tests.create_team_account('owner', 'team');
  perform tests.add_member(tests.account_id('team'), 'member', 'member');
  -- A second team of the owner's, without an intake yet.
  perform tests.create_team_account('owner', 'second');
  perform tests.add_member(tests.account_id('second'), 'member', 'member');
  perform tests.create_user('stranger');
  perform tests.create_team_account('stranger', 'elsewhere');

  perform tests.create_intake(tests.account_id('team'), 'team-form');
  perform tests.create_intake(tests.account_id('elsewhere'), 'elsewhere-form');

  perform tests.create_ticket(tests.account_id('team'), 'From the form');
  insert into public.ticket_intake_submissions (account_id, ticket_id, idempotency_key, request_hash, captcha_token_hash, client_ip)
  values (tests.account_id('team'), tests.ticket_id('From the form'), 'key-1', 'hash-1', repeat('a', 64), '203.0.113.7');
end
$$;

select plan(90);

/*
 * Structure: public.ticket_intakes
 */
select has_table('public', 'ticket_intakes', 'public.ticket_intakes exists');
select columns_are('public', 'ticket_intakes',
  array['account_id', 'enabled', 'intake_key', 'allowed_origins', 'default_category', 'allowed_categories',
        'default_priority', 'allowed_priorities', 'thank_you_url', 'rate_limit_per_ip',
        'rate_limit_per_account', 'rate_limit_window_seconds', 'created_at', 'updated_at'],
  'public.ticket_intakes has exactly its documented columns');
select col_is_pk('public', 'ticket_intakes', 'account_id', 'an account has at most one intake');
select col_is_unique('public', 'ticket_intakes', 'intake_key', 'intake keys are unique');
select fk_ok('public', 'ticket_intakes', 'account_id', 'public', 'accounts', 'id',
  'an intake belongs to an account');
select col_type_is('public', 'ticket_intakes', 'allowed_priorities', 'ticket_priority[]',
  'allowed priorities are ticket_priority values');

select is(
  (select array_agg(a.attname::text order by a.attname)
   from pg_attribute a
   where a.attrelid = 'public.ticket_intakes'::regclass and a.attnum > 0 and not a.attisdropped
     and has_column_privilege('authenticated', a.attrelid, a.attnum, 'INSERT')),
  array['account_id', 'allowed_categories', 'allowed_origins', 'allowed_priorities', 'default_category',
        'default_priority', 'enabled', 'intake_key', 'rate_limit_per_account', 'rate_limit_per_ip',
        'rate_limit_window_seconds', 'thank_you_url'],
  'authenticated may insert every setting but not the timestamps');
select is(
  (select array_agg(a.attname::text order by a.attname)
   from pg_attribute a
   where a.attrelid = 'public.ticket_intakes'::regclass and a.attnum > 0 and not a.attisdropped
     and has_column_privilege('authenticated', a.attrelid, a.attnum, 'UPDATE')),
  array['allowed_categories', 'allowed_origins', 'allowed_priorities', 'default_category',
        'default_priority', 'enabled', 'intake_key', 'rate_limit_per_account', 'rate_limit_per_ip',
        'rate_limit_window_seconds', 'thank_you_url'],
  'authenticated may update every setting but not the account or the timestamps');
select policies_are('public', 'ticket_intakes',
  array['Ticket intakes are viewable by members of their account',
        'Ticket intakes are creatable by settings managers',
        'Ticket intakes are updatable by settings managers',
        'Ticket intakes are deletable by settings managers'],
  'ticket_intakes has its read, insert, update and delete policies only');
select trigger_is('public', 'ticket_intakes', 'set_ticket_intakes_timestamps', 'kit', 'set_timestamps',
  'ticket intakes keep updated_at current');

/*
 * Structure: public.ticket_intake_submissions and kit.intake_rate_counters
 */
select has_table('public', 'ticket_intake_submissions', 'public.ticket_intake_submissions exists');
select columns_are('public', 'ticket_intake_submissions',
  array['id', 'account_id', 'ticket_id', 'idempotency_key', 'request_hash', 'captcha_token_hash',
        'client_ip', 'created_at'],
  'public.ticket_intake_submissions has exactly its documented columns');
select col_is_pk('public', 'ticket_intake_submissions', 'id', 'submissions are keyed by id');
select col_is_unique('public', 'ticket_intake_submissions', 'captcha_token_hash',
  'a captcha token is recorded at most once');
select col_is_unique('public', 'ticket_intake_submissions', array['account_id', 'idempotency_key'],
  'an idempotency key is used at most once per account');
select fk_ok('public', 'ticket_intake_submissions', 'account_id', 'public', 'accounts', 'id',
  'a submission belongs to an account');
select fk_ok('public', 'ticket_intake_submissions', 'ticket_id', 'public', 'tickets', 'id',
  'a submission points at the ticket it created');
select policies_are('public', 'ticket_intake_submissions', array[]::text[],
  'ticket_intake_submissions has no policy: no signed-in user reads it');

select has_table('kit', 'intake_rate_counters', 'kit.intake_rate_counters exists');
select col_is_pk('kit', 'intake_rate_counters', array['bucket', 'window_start'],
  'a bucket has one counter per window');

/*
 * Defaults
 */
select results_eq(
  $$ select enabled, allowed_origins, default_category::text, allowed_categories, default_priority::text,
            allowed_priorities::text[], thank_you_url, rate_limit_per_ip, rate_limit_per_account,
            rate_limit_window_seconds
     from public.ticket_intakes where account_id = tests.account_id('team') $$,
  $$ values (true, '{}'::text[], 'general', null::text[], 'medium', '{low,medium,high}'::text[], null::text, 5, 100, 60) $$,
  'a new intake is enabled, accepts no browser origin yet, any category, every priority, 5/IP and 100/account a minute');

/*
 * anon
 */
select tests.authenticate_as_anon();

select tests.denied(
  $$ select * from public.ticket_intakes $$,
  'ticket_intakes', 'anon cannot read intakes, not even to look up a key');
select tests.denied(
  $$ insert into public.ticket_intakes (account_id, intake_key) values (tests.account_id('second'), 'anon-form') $$,
  'ticket_intakes', 'anon cannot create intakes');
select tests.denied(
  $$ update public.ticket_intakes set enabled = false $$,
  'ticket_intakes', 'anon cannot update intakes');
select tests.denied(
  $$ delete from public.ticket_intakes $$,
  'ticket_intakes', 'anon cannot delete intakes');
select tests.denied(
  $$ select * from public.ticket_intake_submissions $$,
  'ticket_intake_submissions', 'anon cannot read submissions');

/*
 * outsider
 */
select tests.authenticate_as('outsider');

select is_empty(
  $$ select * from public.ticket_intakes $$,
  'an outsider sees no intakes');
select throws_ok(
  $$ insert into public.ticket_intakes (account_id, intake_key) values (tests.account_id('second'), 'hijack') $$,
  '42501', 'new row violates row-level security policy for table "ticket_intakes"',
  'an outsider cannot create an intake for a team');
select throws_ok(
  $$ insert into public.ticket_intakes (account_id, intake_key) values (tests.user_id('outsider'), 'my-own') $$,
  '42501', 'new row violates row-level security policy for table "ticket_intakes"',
  'a user cannot create an intake for their personal account themselves');
select is_empty(
  $$ update public.ticket_intakes set enabled = false where account_id = tests.account_id('team') returning 1 $$,
  'an outsider''s update of a team''s intake matches no rows');
select is_empty(
  $$ delete from public.ticket_intakes where account_id = tests.account_id('team') returning 1 $$,
  'an outsider''s delete of a team''s intake matches no rows');
select tests.denied(
  $$ select * from public.ticket_intake_submissions $$,
  'ticket_intake_submissions', 'an outsider cannot read submissions');

/*
 * member: reads the team's intake, changes nothing (no settings.manage)
 */
select tests.authenticate_as('member');

select results_eq(
  $$ select intake_key from public.ticket_intakes $$,
  $$ values ('team-form') $$,
  'a member sees their team''s intake and no other');
select throws_ok(
  $$ insert into public.ticket_intakes (account_id, intake_key) values (tests.account_id('second'), 'member-form') $$,
  '42501', 'new row violates row-level security policy for table "ticket_intakes"',
  'a member without settings.manage cannot create an intake');
select is_empty(
  $$ update public.ticket_intakes set enabled = false where account_id = tests.account_id('team') returning 1 $$,
  'a member without settings.manage cannot update the intake');
select is_empty(
  $$ delete from public.ticket_intakes where account_id = tests.account_id('team') returning 1 $$,
  'a member without settings.manage cannot delete the intake');
select tests.denied(
  $$ select * from public.ticket_intake_submissions $$,
  'ticket_intake_submissions', 'a member cannot read submissions, which hold customers'' IP addresses');

/*
 * owner: holds settings.manage on both teams
 */
select tests.authenticate_as('owner');

select results_eq(
  $$ select intake_key from public.ticket_intakes $$,
  $$ values ('team-form') $$,
  'an owner sees their team''s intake');
select results_eq(
  $$ insert into public.ticket_intakes (account_id, intake_key, allowed_origins, thank_you_url)
     values (tests.account_id('second'), 'second-form', '{https://second.example}', 'https://second.example/thanks')
     returning intake_key $$,
  $$ values ('second-form') $$,
  'an owner can create an intake for their team');
select throws_ok(
  $$ insert into public.ticket_intakes (account_id, intake_key) values (tests.account_id('elsewhere'), 'not-mine') $$,
  '42501', 'new row violates row-level security policy for table "ticket_intakes"',
  'an owner cannot create an intake for another team');
select results_eq(
  $$ update public.ticket_intakes
     set allowed_origins = '{https://team.example}', allowed_categories = '{general,billing}', rate_limit_per_ip = 3
     where account_id = tests.account_id('team')
     returning allowed_origins, allowed_categories, rate_limit_per_ip $$,
  $$ values ('{https://team.example}'::text[], '{general,billing}'::text[], 3) $$,
  'an owner can change their team''s intake settings');
select is_empty(
  $$ update public.ticket_intakes set enabled = false where account_id = tests.account_id('elsewhere') returning 1 $$,
  'an owner cannot update another team''s intake');
select tests.denied(
  $$ update public.ticket_intakes set account_id = tests.account_id('second') where account_id = tests.account_id('team') $$,
  'ticket_intakes', 'an owner cannot move an intake to another account');
select tests.denied(
  $$ update public.ticket_intakes set created_at = now() where account_id = tests.account_id('team') $$,
  'ticket_intakes', 'an owner cannot write an intake''s timestamps');
select is_empty(
  $$ delete from public.ticket_intakes where account_id = tests.account_id('elsewhere') returning 1 $$,
  'an owner cannot delete another team''s intake');
select results_eq(
  $$ delete from public.ticket_intakes where account_id = tests.account_id('second') returning intake_key $$,
  $$ values ('second-form') $$,
  'an owner can delete their team''s intake');
select tests.denied(
  $$ select * from public.ticket_intake_submissions $$,
  'ticket_intake_submissions', 'an owner cannot read submissions');
select throws_ok(
  $$ select * from kit.intake_rate_counters $$,
  '42501', 'permission denied for schema kit',
  'a signed-in user cannot read the rate counters');

/*
 * service_role
 */
select tests.authenticate_as_service_role();

select set_eq(
  $$ select intake_key from public.ticket_intakes
     where account_id in (tests.account_id('team'), tests.account_id('second'), tests.account_id('elsewhere')) $$,
  $$ values ('team-form'), ('elsewhere-form') $$,
  'service_role sees every intake');
select lives_ok(
  $$ insert into public.ticket_intakes (account_id, intake_key, enabled)
     values (tests.user_id('outsider'), 'outsider-form', false) $$,
  'service_role can create an intake, also for a personal account');
select results_eq(
  $$ update public.ticket_intakes set enabled = true where intake_key = 'outsider-form' returning enabled $$,
  $$ values (true) $$,
  'service_role can update any intake');
select results_eq(
  $$ delete from public.ticket_intakes where intake_key = 'outsider-form' returning account_id $$,
  $$ values (tests.user_id('outsider')) $$,
  'service_role can delete any intake');
select results_eq(
  $$ select idempotency_key, client_ip from public.ticket_intake_submissions
     where account_id = tests.account_id('team') $$,
  $$ values ('key-1', '203.0.113.7') $$,
  'service_role reads submissions');
select tests.denied(
  $$ update public.ticket_intake_submissions set request_hash = 'forged' $$,
  'ticket_intake_submissions', 'service_role cannot edit a submission record');
select throws_ok(
  $$ select * from kit.intake_rate_counters $$,
  '42501', 'permission denied for schema kit',
  'service_role cannot touch the rate counters directly');

/*
 * What the denied and filtered writes left behind
 */
select tests.clear_authentication();

select results_eq(
  $$ select intake_key, enabled, allowed_origins, rate_limit_per_ip from public.ticket_intakes
     where account_id = tests.account_id('team') $$,
  $$ values ('team-form', true, '{https://team.example}'::text[], 3) $$,
  'the team''s intake carries only the owner''s changes');
select results_eq(
  $$ select intake_key, enabled from public.ticket_intakes where account_id = tests.account_id('elsewhere') $$,
  $$ values ('elsewhere-form', true) $$,
  'the other team''s intake is untouched');

/*
 * Constraints on intakes
 */
select throws_ok(
  $$ insert into public.ticket_intakes (account_id, intake_key) values (tests.account_id('second'), 'Team Form') $$,
  '23514', 'new row for relation "ticket_intakes" violates check constraint "ticket_intakes_intake_key_format"',
  'an intake key is lowercase letters, digits, - and _');
select throws_ok(
  $$ insert into public.ticket_intakes (account_id, intake_key) values (tests.account_id('second'), 'ab') $$,
  '23514', 'new row for relation "ticket_intakes" violates check constraint "ticket_intakes_intake_key_format"',
  'an intake key has at least 3 characters');
select throws_ok(
  $$ insert into public.ticket_intakes (account_id, intake_key) values (tests.account_id('second'), repeat('k', 65)) $$,
  '23514', 'new row for relation "ticket_intakes" violates check constraint "ticket_intakes_intake_key_format"',
  'an intake key has at most 64 characters');
select throws_ok(
  $$ insert into public.ticket_intakes (account_id, intake_key) values (tests.account_id('second'), 'team-form') $$,
  '23505', 'duplicate key value violates unique constraint "ticket_intakes_intake_key_key"',
  'two intakes cannot share a key');
select lives_ok(
  $$ insert into public.ticket_intakes (account_id, intake_key, allowed_origins)
     values (tests.account_id('second'), 'a_b-9', '{https://acme.example,http://localhost:3000,http://[::1]:8080,https://xn--bcher-kva.example}') $$,
  'an intake accepts keys with - and _ and exact origins, including ports, IPv6 and punycode');
select throws_ok(
  $$ update public.ticket_intakes set allowed_origins = '{https://acme.example/}' where intake_key = 'a_b-9' $$,
  '23514', 'new row for relation "ticket_intakes" violates check constraint "ticket_intakes_allowed_origins_format"',
  'an origin has no trailing slash');
select throws_ok(
  $$ update public.ticket_intakes set allowed_origins = '{https://acme.example/contact}' where intake_key = 'a_b-9' $$,
  '23514', 'new row for relation "ticket_intakes" violates check constraint "ticket_intakes_allowed_origins_format"',
  'an origin has no path');
select throws_ok(
  $$ update public.ticket_intakes set allowed_origins = '{https://Acme.example}' where intake_key = 'a_b-9' $$,
  '23514', 'new row for relation "ticket_intakes" violates check constraint "ticket_intakes_allowed_origins_format"',
  'an origin is lowercase, as browsers send it');
select throws_ok(
  $$ update public.ticket_intakes set allowed_origins = '{*}' where intake_key = 'a_b-9' $$,
  '23514', 'new row for relation "ticket_intakes" violates check constraint "ticket_intakes_allowed_origins_format"',
  'an origin cannot be a wildcard');
select throws_ok(
  $$ update public.ticket_intakes set allowed_origins = '{"https://a.example https://b.example"}' where intake_key = 'a_b-9' $$,
  '23514', 'new row for relation "ticket_intakes" violates check constraint "ticket_intakes_allowed_origins_format"',
  'one origin cannot smuggle in two');
select throws_ok(
  $$ update public.ticket_intakes set allowed_origins = array['https://acme.example', null] where intake_key = 'a_b-9' $$,
  '23514', 'new row for relation "ticket_intakes" violates check constraint "ticket_intakes_allowed_origins_format"',
  'the origin list holds no nulls');
select throws_ok(
  $$ update public.ticket_intakes set allowed_origins = null where intake_key = 'a_b-9' $$,
  '23502', null,
  'the origin list is never null (empty means none)');
select throws_ok(
  $$ update public.ticket_intakes set allowed_priorities = '{high}' where intake_key = 'a_b-9' $$,
  '23514', 'new row for relation "ticket_intakes" violates check constraint "ticket_intakes_default_priority_allowed"',
  'the default priority must be an allowed one');
select throws_ok(
  $$ update public.ticket_intakes set allowed_priorities = '{}', default_priority = 'low' where intake_key = 'a_b-9' $$,
  '23514', 'new row for relation "ticket_intakes" violates check constraint "ticket_intakes_default_priority_allowed"',
  'an intake allows at least one priority');
select throws_ok(
  $$ update public.ticket_intakes set allowed_categories = '{billing,bugs}' where intake_key = 'a_b-9' $$,
  '23514', 'new row for relation "ticket_intakes" violates check constraint "ticket_intakes_default_category_allowed"',
  'the default category must be an allowed one when categories are restricted');
select lives_ok(
  $$ update public.ticket_intakes
     set allowed_categories = '{billing,bugs}', default_category = 'bugs',
         allowed_priorities = '{medium,high}', default_priority = 'high'
     where intake_key = 'a_b-9' $$,
  'restricted categories and priorities are accepted with a matching default');
select throws_ok(
  $$ update public.ticket_intakes set default_category = ' ', allowed_categories = null where intake_key = 'a_b-9' $$,
  '23514', 'new row for relation "ticket_intakes" violates check constraint "ticket_intakes_default_category_not_blank"',
  'the default category cannot be blank');
select throws_ok(
  $$ update public.ticket_intakes set thank_you_url = 'javascript:alert(1)' where intake_key = 'a_b-9' $$,
  '23514', 'new row for relation "ticket_intakes" violates check constraint "ticket_intakes_thank_you_url_is_http"',
  'a thank-you URL is an http(s) URL');
select lives_ok(
  $$ update public.ticket_intakes set thank_you_url = 'http://localhost:3000/thanks' where intake_key = 'a_b-9' $$,
  'a thank-you URL may be plain http, for local pages');
select throws_ok(
  $$ update public.ticket_intakes set rate_limit_per_ip = 0 where intake_key = 'a_b-9' $$,
  '23514', 'new row for relation "ticket_intakes" violates check constraint "ticket_intakes_rate_limit_per_ip_positive"',
  'the per-IP limit is positive');
select throws_ok(
  $$ update public.ticket_intakes set rate_limit_per_account = 0 where intake_key = 'a_b-9' $$,
  '23514', 'new row for relation "ticket_intakes" violates check constraint "ticket_intakes_rate_limit_per_account_positive"',
  'the per-account limit is positive');
select throws_ok(
  $$ update public.ticket_intakes set rate_limit_window_seconds = 0 where intake_key = 'a_b-9' $$,
  '23514', 'new row for relation "ticket_intakes" violates check constraint "ticket_intakes_rate_limit_window_seconds_positive"',
  'the rate-limit window is positive');
select throws_ok(
  $$ insert into public.ticket_intakes (account_id, intake_key) values (tests.account_id('team'), 'team-form-2') $$,
  '23505', 'duplicate key value violates unique constraint "ticket_intakes_pkey"',
  'an account has at most one intake');

/*
 * Timestamps
 */
insert into public.ticket_intakes (account_id, intake_key, created_at, updated_at)
values (tests.user_id('owner'), 'old-form', '2020-01-01 00:00:00+00', '2020-01-01 00:00:00+00');
update public.ticket_intakes
set enabled = false, created_at = now(), updated_at = '2021-01-01 00:00:00+00'
where intake_key = 'old-form';

select results_eq(
  $$ select created_at, updated_at from public.ticket_intakes where intake_key = 'old-form' $$,
  $$ values ('2020-01-01 00:00:00+00'::timestamptz, now()) $$,
  'updating an intake stamps updated_at and keeps created_at');

/*
 * Constraints on submissions
 */
select throws_ok(
  $$ insert into public.ticket_intake_submissions (account_id, ticket_id, captcha_token_hash)
     values (tests.account_id('team'), tests.ticket_id('From the form'), repeat('a', 64)) $$,
  '23505', 'duplicate key value violates unique constraint "ticket_intake_submissions_captcha_token_hash_key"',
  'a captcha token hash is recorded once, whatever the account');
select throws_ok(
  $$ insert into public.ticket_intake_submissions (account_id, ticket_id, captcha_token_hash)
     values (tests.account_id('team'), tests.ticket_id('From the form'), repeat('A', 64)) $$,
  '23514', 'new row for relation "ticket_intake_submissions" violates check constraint "ticket_intake_submissions_captcha_token_hash_format"',
  'a captcha token hash is lowercase hex SHA-256');
select throws_ok(
  $$ insert into public.ticket_intake_submissions (account_id, ticket_id, captcha_token_hash)
     values (tests.account_id('team'), tests.ticket_id('From the form'), 'the-token-itself') $$,
  '23514', 'new row for relation "ticket_intake_submissions" violates check constraint "ticket_intake_submissions_captcha_token_hash_format"',
  'the captcha token itself is never stored');
select throws_ok(
  $$ insert into public.ticket_intake_submissions (account_id, ticket_id, idempotency_key, captcha_token_hash)
     values (tests.account_id('team'), tests.ticket_id('From the form'), 'key-1', repeat('b', 64)) $$,
  '23505', 'duplicate key value violates unique constraint "ticket_intake_submissions_account_id_idempotency_key_key"',
  'an idempotency key is used once per account');
select lives_ok(
  $$ insert into public.ticket_intake_submissions (account_id, ticket_id, idempotency_key, captcha_token_hash)
     values (tests.account_id('elsewhere'), tests.ticket_id('From the form'), 'key-1', repeat('c', 64)) $$,
  'another account may use the same idempotency key');
select lives_ok(
  $$ insert into public.ticket_intake_submissions (account_id, ticket_id, captcha_token_hash)
     values (tests.account_id('team'), tests.ticket_id('From the form'), repeat('d', 64)),
            (tests.account_id('team'), tests.ticket_id('From the form'), repeat('e', 64)) $$,
  'submissions without an idempotency key do not clash');
select throws_ok(
  $$ insert into public.ticket_intake_submissions (account_id, ticket_id, idempotency_key, captcha_token_hash)
     values (tests.account_id('team'), tests.ticket_id('From the form'), '', repeat('f', 64)) $$,
  '23514', 'new row for relation "ticket_intake_submissions" violates check constraint "ticket_intake_submissions_idempotency_key_length"',
  'an idempotency key is not empty');

/*
 * Cascades
 */
delete from public.tickets where id = tests.ticket_id('From the form');

select is_empty(
  $$ select 1 from public.ticket_intake_submissions
     where account_id in (tests.account_id('team'), tests.account_id('elsewhere')) $$,
  'deleting a ticket deletes the submissions that created it');

delete from public.accounts where id = tests.account_id('team');

select is_empty(
  $$ select 1 from public.ticket_intakes where intake_key = 'team-form' $$,
  'deleting an account deletes its intake');

select * from finish();
rollback;
