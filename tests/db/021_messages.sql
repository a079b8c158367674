-- public.messages and public.has_role_on_ticket_account: members read a
-- ticket's conversation and reply as support in their own name; nobody
-- edits or deletes a message through the API. Walked as anon, an outsider,
-- a member, the owner and service_role; then the constraints.
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
  perform tests.create_user('stranger');
  perform tests.create_team_account('stranger', 'elsewhere');

  perform tests.create_ticket(tests.account_id('team'), 'Printer on fire');
  perform tests.create_ticket(tests.account_id('elsewhere'), 'Elsewhere issue');
end
$$;

select plan(54);

/*
 * Structure
 */
select has_table('public', 'messages', 'public.messages exists');
select columns_are('public', 'messages',
  array['id', 'ticket_id', 'author', 'author_account_id', 'content', 'attachment_url', 'created_at', 'updated_at'],
  'public.messages has exactly its documented columns');
select col_is_pk('public', 'messages', 'id', 'messages are keyed by id');
select fk_ok('public', 'messages', 'ticket_id', 'public', 'tickets', 'id',
  'a message belongs to a ticket');
select fk_ok('public', 'messages', 'author_account_id', 'public', 'accounts', 'id',
  'a message''s author is an account');
select enum_has_labels('public', 'message_author', array['support', 'customer'],
  'message_author is support or customer');
select has_index('public', 'messages', 'ix_messages_ticket_id', array['ticket_id'],
  'messages are indexed by ticket');

select is(
  (select array_agg(a.attname::text order by a.attname)
   from pg_attribute a
   where a.attrelid = 'public.messages'::regclass and a.attnum > 0 and not a.attisdropped
     and has_column_privilege('authenticated', a.attrelid, a.attnum, 'INSERT')),
  array['attachment_url', 'author', 'author_account_id', 'content', 'id', 'ticket_id'],
  'authenticated may insert every column of a message but its timestamps');

select policies_are('public', 'messages',
  array['Messages are viewable by members of the ticket''s account',
        'Support replies can be added by members in their own name'],
  'messages has its read and insert policies only');
select trigger_is('public', 'messages', 'set_messages_timestamps', 'kit', 'set_timestamps',
  'messages keep updated_at current');

select isnt_definer('public', 'has_role_on_ticket_account', array['uuid'],
  'has_role_on_ticket_account runs as the caller, whose RLS already limits the tickets it sees');
select volatility_is('public', 'has_role_on_ticket_account', array['uuid'], 'stable',
  'has_role_on_ticket_account is stable, so policies may call it once per row cheaply');
select function_privs_are('public', 'has_role_on_ticket_account', array['uuid'], 'anon',
  array[]::text[], 'anon cannot call has_role_on_ticket_account');
select function_privs_are('public', 'has_role_on_ticket_account', array['uuid'], 'authenticated',
  array['EXECUTE'], 'authenticated can call has_role_on_ticket_account');
select function_privs_are('public', 'has_role_on_ticket_account', array['uuid'], 'service_role',
  array['EXECUTE'], 'service_role can call has_role_on_ticket_account');

/*
 * anon
 */
select tests.authenticate_as_anon();

select tests.denied(
  $$ select * from public.messages $$,
  'messages', 'anon cannot read messages');
select tests.denied(
  $$ insert into public.messages (ticket_id, author, content)
     values (tests.ticket_id('Printer on fire'), 'customer', 'Hello?') $$,
  'messages', 'anon cannot add messages');
select tests.denied(
  $$ update public.messages set content = 'Defaced' $$,
  'messages', 'anon cannot update messages');
select tests.denied(
  $$ delete from public.messages $$,
  'messages', 'anon cannot delete messages');
select throws_ok(
  $$ select public.has_role_on_ticket_account(tests.ticket_id('Printer on fire')) $$,
  '42501', 'permission denied for function has_role_on_ticket_account',
  'anon cannot call has_role_on_ticket_account');

/*
 * outsider
 */
select tests.authenticate_as('outsider');

select is_empty(
  $$ select * from public.messages $$,
  'an outsider sees no messages at all');
select ok(not public.has_role_on_ticket_account(tests.ticket_id('Printer on fire')),
  'an outsider has no role on a team ticket''s account');
select throws_ok(
  $$ insert into public.messages (ticket_id, author, author_account_id, content)
     values (tests.ticket_id('Printer on fire'), 'support', tests.user_id('outsider'), 'Hi, support here') $$,
  '42501', 'new row violates row-level security policy for table "messages"',
  'an outsider cannot reply on a team''s ticket');
select tests.denied(
  $$ update public.messages set content = 'Changed' $$,
  'messages', 'an outsider cannot update messages');
select tests.denied(
  $$ delete from public.messages $$,
  'messages', 'an outsider cannot delete messages');

/*
 * member
 */
select tests.authenticate_as('member');

select results_eq(
  $$ select author::text, content::text from public.messages $$,
  $$ values ('customer', 'Please help: Printer on fire') $$,
  'a member reads the conversation on their team''s tickets, and nothing else');
select ok(public.has_role_on_ticket_account(tests.ticket_id('Printer on fire')),
  'a member has a role on their team ticket''s account');
select ok(not public.has_role_on_ticket_account(tests.ticket_id('Elsewhere issue')),
  'a member has no role on another team ticket''s account');
select ok(not public.has_role_on_ticket_account('00000000-0000-4000-8000-00000000dead'),
  'nobody has a role on the account of a ticket that does not exist');
select lives_ok(
  $$ insert into public.messages (ticket_id, author, author_account_id, content)
     values (tests.ticket_id('Printer on fire'), 'support', tests.user_id('member'), 'Have you tried water?') $$,
  'a member can reply as support in their own name');
select throws_ok(
  $$ insert into public.messages (ticket_id, author, author_account_id, content)
     values (tests.ticket_id('Printer on fire'), 'customer', null, 'Never mind, fixed it') $$,
  '42501', 'new row violates row-level security policy for table "messages"',
  'a member cannot write a message as the customer');
select throws_ok(
  $$ insert into public.messages (ticket_id, author, author_account_id, content)
     values (tests.ticket_id('Printer on fire'), 'support', tests.user_id('owner'), 'The boss says no') $$,
  '42501', 'new row violates row-level security policy for table "messages"',
  'a member cannot reply in a colleague''s name');
select throws_ok(
  $$ insert into public.messages (ticket_id, author, content)
     values (tests.ticket_id('Printer on fire'), 'support', 'Unsigned') $$,
  '42501', 'new row violates row-level security policy for table "messages"',
  'a member cannot reply without naming themselves');
select throws_ok(
  $$ insert into public.messages (ticket_id, author, author_account_id, content)
     values (tests.ticket_id('Elsewhere issue'), 'support', tests.user_id('member'), 'Not my team') $$,
  '42501', 'new row violates row-level security policy for table "messages"',
  'a member cannot reply on another team''s ticket');
select tests.denied(
  $$ insert into public.messages (ticket_id, author, author_account_id, content, created_at)
     values (tests.ticket_id('Printer on fire'), 'support', tests.user_id('member'), 'Backdated', '2020-01-01') $$,
  'messages', 'a member cannot backdate a reply');
select tests.denied(
  $$ update public.messages set content = 'Edited' where ticket_id = tests.ticket_id('Printer on fire') $$,
  'messages', 'a member cannot edit messages');
select tests.denied(
  $$ delete from public.messages where ticket_id = tests.ticket_id('Printer on fire') $$,
  'messages', 'a member cannot delete messages');

/*
 * owner
 */
select tests.authenticate_as('owner');

select set_eq(
  $$ select author::text, content::text from public.messages $$,
  $$ values ('customer', 'Please help: Printer on fire'), ('support', 'Have you tried water?') $$,
  'an owner reads the whole conversation, including their colleague''s reply');
select lives_ok(
  $$ insert into public.messages (id, ticket_id, author, author_account_id, content, attachment_url)
     values ('00000000-0000-4000-8000-00000000d001', tests.ticket_id('Printer on fire'), 'support',
             tests.user_id('owner'), 'Manual attached', 'attachments/00000000-0000-4000-8000-00000000d001') $$,
  'an owner can reply with an attachment, under an id chosen up front');
select tests.denied(
  $$ update public.messages set content = 'Edited' where ticket_id = tests.ticket_id('Printer on fire') $$,
  'messages', 'an owner cannot edit messages');
select tests.denied(
  $$ delete from public.messages where ticket_id = tests.ticket_id('Printer on fire') $$,
  'messages', 'an owner cannot delete messages');

/*
 * service_role
 */
select tests.authenticate_as_service_role();

select bag_eq(
  $$ select ticket_id from public.messages
     where ticket_id in (tests.ticket_id('Printer on fire'), tests.ticket_id('Elsewhere issue')) $$,
  $$ values (tests.ticket_id('Printer on fire')), (tests.ticket_id('Printer on fire')),
            (tests.ticket_id('Printer on fire')), (tests.ticket_id('Elsewhere issue')) $$,
  'service_role sees every message');
select ok(not public.has_role_on_ticket_account(tests.ticket_id('Printer on fire')),
  'service_role itself has no role on any ticket''s account');
select lives_ok(
  $$ insert into public.messages (id, ticket_id, author, content)
     values ('00000000-0000-4000-8000-00000000d002', tests.ticket_id('Elsewhere issue'), 'customer', 'Any news?') $$,
  'service_role can add a customer''s message');
select results_eq(
  $$ update public.messages set content = 'Any news? (sent twice)'
     where id = '00000000-0000-4000-8000-00000000d002' returning content::text $$,
  $$ values ('Any news? (sent twice)') $$,
  'service_role can correct a message');
select results_eq(
  $$ delete from public.messages where id = '00000000-0000-4000-8000-00000000d002' returning ticket_id $$,
  $$ values (tests.ticket_id('Elsewhere issue')) $$,
  'service_role can delete a message');

/*
 * What the denied writes left behind
 */
select tests.clear_authentication();

select set_eq(
  $$ select author::text, author_account_id, content::text from public.messages
     where ticket_id = tests.ticket_id('Printer on fire') $$,
  $$ values ('customer', null::uuid, 'Please help: Printer on fire'),
            ('support', tests.user_id('member'), 'Have you tried water?'),
            ('support', tests.user_id('owner'), 'Manual attached') $$,
  'the conversation holds exactly the customer''s message and the two signed replies');
select results_eq(
  $$ select content::text from public.messages where ticket_id = tests.ticket_id('Elsewhere issue') $$,
  $$ values ('Please help: Elsewhere issue') $$,
  'the other team''s conversation is untouched');

/*
 * Constraints
 */
select throws_ok(
  $$ insert into public.messages (ticket_id, author, content) values (tests.ticket_id('Printer on fire'), 'customer', ' ') $$,
  '23514', 'new row for relation "messages" violates check constraint "messages_content_not_blank"',
  'a message cannot be blank');
select throws_ok(
  $$ insert into public.messages (ticket_id, author, content)
     values (tests.ticket_id('Printer on fire'), 'customer', repeat('x', 5001)) $$,
  '22001', 'value too long for type character varying(5000)',
  'a message is at most 5000 characters');
select throws_ok(
  $$ insert into public.messages (ticket_id, author, content, attachment_url)
     values (tests.ticket_id('Printer on fire'), 'customer', 'See file', repeat('x', 501)) $$,
  '22001', 'value too long for type character varying(500)',
  'an attachment URL is at most 500 characters');
select throws_ok(
  $$ insert into public.messages (ticket_id, content) values (tests.ticket_id('Printer on fire'), 'Who am I?') $$,
  '23502', null,
  'a message has an author');
select throws_ok(
  $$ insert into public.messages (ticket_id, author, content)
     values ('00000000-0000-4000-8000-00000000dead', 'customer', 'Lost') $$,
  '23503', 'insert or update on table "messages" violates foreign key constraint "messages_ticket_id_fkey"',
  'a message belongs to an existing ticket');

delete from auth.users where id = tests.user_id('member');

select results_eq(
  $$ select author::text, author_account_id from public.messages where content = 'Have you tried water?' $$,
  $$ values ('support', null::uuid) $$,
  'deleting a user keeps their replies, without their name');

select * from finish();
rollback;
