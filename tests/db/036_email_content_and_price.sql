-- What a mail costs is what is sent: email_price and reserve_email count the
-- html as well as the text (or a template's variables), and the mail log
-- keeps all of it. Regression: the html was neither priced nor logged when a
-- text was sent too, so 100,000 characters of html cost 1 credit.
begin;
create extension if not exists pgtap;
\ir _helpers.psql

do $$
begin
  perform tests.create_user('ada');
  perform tests.allow_custom_content('ada');
end
$$;

-- reserve_email as ada with an html body beside the text.
create function tests.reserve_with_html(idempotency_key text, content text, html text,
                                        recipients text[] default '{x@example.com}')
returns jsonb
language plpgsql
as $$
declare
  answer jsonb;
begin
  perform tests.authenticate_as('ada');
  answer := public.reserve_email(
    p_recipients => reserve_with_html.recipients,
    p_subject => 'Mail ' || reserve_with_html.idempotency_key,
    p_content => reserve_with_html.content,
    p_mail_type => 'custom',
    p_idempotency_key => reserve_with_html.idempotency_key,
    p_request_hash => 'hash:' || reserve_with_html.idempotency_key,
    p_html => reserve_with_html.html
  );
  perform tests.clear_authentication();
  return answer;
end;
$$;

select plan(25);

/*
 * Signatures
 */
select has_function('public', 'email_price', array['text[]', 'text', 'text', 'text'],
  'email_price(p_recipients, p_content, p_mail_type, p_html) exists');
select is(
  (select count(*)::int from pg_proc where pronamespace = 'public'::regnamespace and proname = 'email_price'),
  1, 'email_price has one signature: the old one without html is gone');
select is(
  (select array_to_string(proargnames, ', ') from pg_proc
   where oid = 'public.email_price(text[], text, text, text)'::regprocedure),
  'p_recipients, p_content, p_mail_type, p_html',
  'email_price''s parameters are named as PostgREST callers send them');
select function_privs_are('public', 'email_price', array['text[]', 'text', 'text', 'text'], 'anon',
  array[]::text[], 'anon cannot call email_price');
select function_privs_are('public', 'email_price', array['text[]', 'text', 'text', 'text'], 'authenticated',
  array['EXECUTE'], 'authenticated can call email_price to show a price');
select has_column('public', 'user_mails', 'html', 'the mail log has the html body');

/*
 * email_price counts the html
 */
select tests.authenticate_as('ada');

select is(public.email_price('{a@example.com}', 'Hi', 'custom', repeat('x', 100000)), 1,
  '100,000 bytes of html and a short text fit in the included 100 KiB');
select is(public.email_price('{a@example.com}', 'Hi', 'custom', repeat('x', 102400)), 2,
  'html and text together past 100 KiB start a step, though the text alone is tiny');
select is(public.email_price('{a@example.com}', repeat('t', 60000), 'custom', repeat('h', 60000)), 2,
  'the text and the html are added: 60 KB + 60 KB is past 100 KiB');
select is(public.email_price('{a@example.com}', null, 'custom', repeat('h', 201 * 1024)), 3,
  'an html-only mail is priced by its html: 201 KiB is 1 + 2');
select is(public.email_price('{a@example.com,b@example.com}', 'Hi', 'custom', repeat('é', 60000)), 4,
  'html is counted in UTF-8 bytes, per recipient: 2 x (1 + 1)');
select is(public.email_price('{a@example.com}', 'Hi', 'custom'), 1,
  'without html the price is the text''s, as before');
select is(public.email_price('{a@example.com}', '{"name": "' || repeat('v', 110000) || '"}', 'template'), 2,
  'a template is priced by its variables');
select tests.clear_authentication();

/*
 * reserve_email prices and logs what is sent
 */
select is(
  (select (tests.reserve_with_html('k-html', 'Hello in text', repeat('<p>x</p>', 13000)) ->> 'credits_used')::int),
  2,
  'a mail with 104,000 bytes of html beside a short text costs 2');
select results_eq(
  $$ select content, octet_length(html), credits_used from public.user_mails where id = tests.mail_id('ada', 'k-html') $$,
  $$ values ('Hello in text', 104000, 2) $$,
  'and the log keeps the text and all of the html');
select is(
  (select (tests.reserve_with_html('k-html-3', 'Text', repeat('h', 102400), '{a@example.com,b@example.com,c@example.com}')
           ->> 'credits_used')::int),
  6,
  'each recipient gets the html too: 3 x (1 + 1)');
select is(
  (select (tests.reserve_with_html('k-html-only', null, '<p>Only html</p>') ->> 'credits_used')::int),
  1,
  'an html-only mail is accepted');
select results_eq(
  $$ select content, html from public.user_mails where id = tests.mail_id('ada', 'k-html-only') $$,
  $$ values ('', '<p>Only html</p>') $$,
  'and logged with an empty text and its html');
select throws_ok(
  $$ update public.user_mails set html = '<p>cheaper</p>' where id = tests.mail_id('ada', 'k-html') $$,
  '23514', 'only the outcome of a reserved or unknown mail can change',
  'the html, like all that was sent and priced, is fixed at reservation');
select results_eq(
  $$ select tests.credits('ada'), tests.ledger_sum('ada') $$,
  $$ values (291, 291) $$,
  'ada paid 2 + 6 + 1, and the balance equals the ledger');

select throws_ok(
  $$ select tests.reserve_with_html('k-empty', null, null) $$,
  'P0001', 'http_422: A custom email needs html or text',
  'a custom mail with neither html nor text is refused');
select throws_ok(
  $$ select tests.reserve_with_html('k-blank', '', '') $$,
  'P0001', 'http_422: A custom email needs html or text',
  'and so is one whose bodies are empty');

select tests.authenticate_as('ada');
select throws_ok(
  $$ select public.reserve_email(p_recipients => '{x@example.com}', p_subject => null, p_content => '{}',
                                 p_mail_type => 'template', p_idempotency_key => 'k-template-html',
                                 p_request_hash => 'h', p_template_id => 'welcome', p_html => '<p>x</p>') $$,
  '23514', 'new row for relation "user_mails" violates check constraint "user_mails_template_has_no_html"',
  'a template mail carries no html of its own');
select throws_ok(
  $$ select public.reserve_email(p_recipients => '{x@example.com}', p_subject => null, p_content => 'Hi',
                                 p_mail_type => 'custom', p_idempotency_key => 'k-no-subject', p_request_hash => 'h') $$,
  '23514', 'new row for relation "user_mails" violates check constraint "user_mails_custom_has_subject"',
  'a custom mail needs its subject');
select tests.clear_authentication();
select is(tests.credits('ada'), 291, 'refused mails cost nothing');

select * from finish();
rollback;
