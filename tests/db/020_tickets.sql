-- public.tickets: its structure, who reads, creates, changes and deletes
-- which tickets (anon, an outsider, a member, the owner, service_role), then
-- the generated reference and the constraints that keep tickets well-formed.
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
  -- A second team nobody above belongs to.
  perform tests.create_user('stranger');
  perform tests.create_team_account('stranger', 'elsewhere');

  perform tests.create_ticket(tests.account_id('team'), 'Printer on fire');
  perform tests.create_ticket(tests.account_id('team'), 'Login broken');
  perform tests.create_ticket(tests.account_id('elsewhere'), 'Elsewhere issue');
end
$$;

select plan(67);

/*
 * Structure
 */
select has_table('public', 'tickets', 'public.tickets exists');
select columns_are('public', 'tickets',
  array['id', 'account_id', 'reference', 'title', 'category', 'assigned_to', 'priority', 'status',
        'customer_email', 'customer_name', 'resolution', 'resolved_at', 'resolved_by',
        'closed_at', 'closed_by', 'created_at', 'updated_at'],
  'public.tickets has exactly its documented columns');
select col_is_pk('public', 'tickets', 'id', 'tickets are keyed by id');
select col_is_unique('public', 'tickets', 'reference', 'ticket references are unique');
select col_type_is('public', 'tickets', 'priority', 'ticket_priority', 'a ticket''s priority is a ticket_priority');
select col_type_is('public', 'tickets', 'status', 'ticket_status', 'a ticket''s status is a ticket_status');
select fk_ok('public', 'tickets', 'account_id', 'public', 'accounts', 'id',
  'a ticket belongs to an account');
select fk_ok('public', 'tickets', 'assigned_to', 'public', 'accounts', 'id',
  'a ticket is assigned to an account');
select fk_ok('public', 'tickets', 'resolved_by', 'public', 'accounts', 'id',
  'a ticket is resolved by an account');
select fk_ok('public', 'tickets', 'closed_by', 'public', 'accounts', 'id',
  'a ticket is closed by an account');
select enum_has_labels('public', 'ticket_status', array['open', 'closed', 'resolved', 'in_progress'],
  'ticket_status is open, closed, resolved, in_progress');
select enum_has_labels('public', 'ticket_priority', array['low', 'medium', 'high'],
  'ticket_priority is low, medium, high');
select has_index('public', 'tickets', 'ix_tickets_account_id', array['account_id'],
  'tickets are indexed by account');

select is(
  (select array_agg(a.attname::text order by a.attname)
   from pg_attribute a
   where a.attrelid = 'public.tickets'::regclass and a.attnum > 0 and not a.attisdropped
     and has_column_privilege('authenticated', a.attrelid, a.attnum, 'UPDATE')),
  array['assigned_to', 'category', 'closed_at', 'closed_by', 'priority', 'resolution',
        'resolved_at', 'resolved_by', 'status', 'title'],
  'authenticated may update only the columns support works on');
select is_empty($$
  select a.attname from pg_attribute a
  where a.attrelid = 'public.tickets'::regclass and a.attnum > 0 and not a.attisdropped
    and has_column_privilege('authenticated', a.attrelid, a.attnum, 'INSERT')
$$, 'authenticated cannot insert into any column of tickets');

select policies_are('public', 'tickets',
  array['Tickets are viewable by members of their account',
        'Tickets are updatable by members with tickets.update',
        'Tickets are deletable by members with tickets.delete'],
  'tickets has its read, update and delete policies only');
select trigger_is('public', 'tickets', 'set_ticket_reference', 'kit', 'set_ticket_reference',
  'a new ticket gets a reference from kit.set_ticket_reference');
select trigger_is('public', 'tickets', 'set_tickets_timestamps', 'kit', 'set_timestamps',
  'tickets keep updated_at current');

select ok(
  array['tickets.update', 'tickets.delete']::public.app_permissions[] <@ enum_range(null::public.app_permissions),
  'app_permissions has tickets.update and tickets.delete');
select set_eq(
  $$ select role::text, permission::text from public.role_permissions
     where permission in ('tickets.update', 'tickets.delete') $$,
  $$ values ('owner', 'tickets.update'), ('owner', 'tickets.delete') $$,
  'only the owner role grants tickets.update and tickets.delete');

/*
 * anon
 */
select tests.authenticate_as_anon();

select tests.denied(
  $$ select * from public.tickets $$,
  'tickets', 'anon cannot read tickets');
select tests.denied(
  $$ insert into public.tickets (account_id, title) values (tests.account_id('team'), 'Spam') $$,
  'tickets', 'anon cannot create tickets');
select tests.denied(
  $$ update public.tickets set status = 'closed' $$,
  'tickets', 'anon cannot update tickets');
select tests.denied(
  $$ delete from public.tickets $$,
  'tickets', 'anon cannot delete tickets');

/*
 * outsider: signed in, member of nothing
 */
select tests.authenticate_as('outsider');

select is_empty(
  $$ select * from public.tickets $$,
  'an outsider sees no tickets at all');
select tests.denied(
  $$ insert into public.tickets (account_id, title) values (tests.account_id('team'), 'Fake') $$,
  'tickets', 'an outsider cannot create tickets');
select is_empty(
  $$ update public.tickets set status = 'closed' where id = tests.ticket_id('Printer on fire') returning id $$,
  'an outsider''s update of a team''s ticket matches no rows');
select is_empty(
  $$ delete from public.tickets where id = tests.ticket_id('Printer on fire') returning id $$,
  'an outsider''s delete of a team''s ticket matches no rows');

/*
 * member: reads the team's tickets, changes nothing
 */
select tests.authenticate_as('member');

select set_eq(
  $$ select id from public.tickets $$,
  $$ values (tests.ticket_id('Printer on fire')), (tests.ticket_id('Login broken')) $$,
  'a member sees their team''s tickets');
select is_empty(
  $$ select 1 from public.tickets where id = tests.ticket_id('Elsewhere issue') $$,
  'a member cannot see another team''s tickets');
select tests.denied(
  $$ insert into public.tickets (account_id, title) values (tests.account_id('team'), 'Member made') $$,
  'tickets', 'a member cannot create tickets');
select is_empty(
  $$ update public.tickets set status = 'closed' where id = tests.ticket_id('Printer on fire') returning id $$,
  'a member without tickets.update cannot update a ticket');
select is_empty(
  $$ delete from public.tickets where id = tests.ticket_id('Printer on fire') returning id $$,
  'a member without tickets.delete cannot delete a ticket');

/*
 * owner: holds tickets.update and tickets.delete on the team
 */
select tests.authenticate_as('owner');

select set_eq(
  $$ select id from public.tickets $$,
  $$ values (tests.ticket_id('Printer on fire')), (tests.ticket_id('Login broken')) $$,
  'an owner sees their team''s tickets');
select tests.denied(
  $$ insert into public.tickets (account_id, title) values (tests.account_id('team'), 'Owner made') $$,
  'tickets', 'an owner cannot create tickets directly');
select results_eq(
  $$ update public.tickets
     set status = 'in_progress', priority = 'high', assigned_to = tests.user_id('owner')
     where id = tests.ticket_id('Printer on fire')
     returning status::text, priority::text, assigned_to $$,
  $$ values ('in_progress', 'high', tests.user_id('owner')) $$,
  'an owner can change a ticket''s status, priority and assignee');
select is_empty(
  $$ update public.tickets set status = 'closed' where id = tests.ticket_id('Elsewhere issue') returning id $$,
  'an owner cannot update another team''s ticket');
select tests.denied(
  $$ update public.tickets set reference = 'TK-AAAAAAAA' where id = tests.ticket_id('Printer on fire') $$,
  'tickets', 'an owner cannot change a ticket''s reference');
select tests.denied(
  $$ update public.tickets set account_id = tests.user_id('owner') where id = tests.ticket_id('Printer on fire') $$,
  'tickets', 'an owner cannot move a ticket to another account');
select tests.denied(
  $$ update public.tickets set customer_email = 'me@owner.example' where id = tests.ticket_id('Printer on fire') $$,
  'tickets', 'an owner cannot rewrite what the customer submitted');
select is_empty(
  $$ delete from public.tickets where id = tests.ticket_id('Elsewhere issue') returning id $$,
  'an owner cannot delete another team''s ticket');
select results_eq(
  $$ delete from public.tickets where id = tests.ticket_id('Login broken') returning title::text $$,
  $$ values ('Login broken') $$,
  'an owner can delete their team''s ticket');

/*
 * service_role: trusted server code, bypasses RLS
 */
select tests.authenticate_as_service_role();

select set_eq(
  $$ select id from public.tickets
     where account_id in (tests.account_id('team'), tests.account_id('elsewhere')) $$,
  $$ values (tests.ticket_id('Printer on fire')), (tests.ticket_id('Elsewhere issue')) $$,
  'service_role sees every ticket');
select lives_ok(
  $$ insert into public.tickets (id, account_id, title)
     values ('00000000-0000-4000-8000-00000000c001', tests.account_id('elsewhere'), 'Server made') $$,
  'service_role can create a ticket');
select results_eq(
  $$ update public.tickets set status = 'resolved', resolution = 'Rebooted'
     where id = tests.ticket_id('Elsewhere issue') returning status::text $$,
  $$ values ('resolved') $$,
  'service_role can update any ticket');
select results_eq(
  $$ delete from public.tickets where id = '00000000-0000-4000-8000-00000000c001' returning title::text $$,
  $$ values ('Server made') $$,
  'service_role can delete any ticket');

/*
 * What the denied and filtered writes left behind
 */
select tests.clear_authentication();

select results_eq(
  $$ select status::text, priority::text, assigned_to from public.tickets where id = tests.ticket_id('Printer on fire') $$,
  $$ values ('in_progress', 'high', tests.user_id('owner')) $$,
  'the team''s ticket carries only the owner''s changes');
select results_eq(
  $$ select status::text, resolution from public.tickets where id = tests.ticket_id('Elsewhere issue') $$,
  $$ values ('resolved', 'Rebooted') $$,
  'the other team''s ticket carries only service_role''s changes');
select is_empty(
  $$ select 1 from public.messages where ticket_id = tests.ticket_id('Login broken') $$,
  'deleting a ticket deletes its messages');

/*
 * Defaults and the generated reference
 */
insert into public.tickets (id, account_id, title)
values ('00000000-0000-4000-8000-00000000c002', tests.account_id('team'), 'Bare ticket');

select results_eq(
  $$ select category::text, priority::text, status::text from public.tickets
     where id = '00000000-0000-4000-8000-00000000c002' $$,
  $$ values ('general', 'medium', 'open') $$,
  'a new ticket is in category general, medium priority and open');
select is_empty(
  $$ select reference from public.tickets
     where account_id in (tests.account_id('team'), tests.account_id('elsewhere'))
       and reference !~ '^TK-[0-9A-HJKMNP-TV-Z]{8}$' $$,
  'every generated reference is TK- and 8 characters of Crockford base32');

insert into public.tickets (account_id, title)
select tests.account_id('elsewhere'), 'Bulk ' || n from generate_series(1, 500) as n;

select is(
  (select count(distinct reference)::int from public.tickets where title like 'Bulk %'),
  500,
  'five hundred new tickets get five hundred different references');
select ok(
  (select count(distinct substr(reference, position, 1)) = 32
   from public.tickets, generate_series(4, 11) as position
   where title like 'Bulk %'),
  'generated references use the whole 32-letter alphabet');

select results_eq(
  $$ insert into public.tickets (account_id, title, reference)
     values (tests.account_id('team'), 'Imported', 'TK-0123ABCD') returning reference $$,
  $$ values ('TK-0123ABCD') $$,
  'a reference given on insert is kept');
select throws_ok(
  $$ insert into public.tickets (account_id, title, reference)
     values (tests.account_id('team'), 'Clash', 'TK-0123ABCD') $$,
  '23505', 'duplicate key value violates unique constraint "tickets_reference_key"',
  'two tickets cannot share a reference');
select throws_ok(
  $$ insert into public.tickets (account_id, title, reference)
     values (tests.account_id('team'), 'Ambiguous', 'TK-ILOU0000') $$,
  '23514', 'new row for relation "tickets" violates check constraint "tickets_reference_format"',
  'a reference cannot use the ambiguous letters I, L, O and U');

/*
 * Constraints
 */
select throws_ok(
  $$ insert into public.tickets (account_id, title) values (tests.account_id('team'), '   ') $$,
  '23514', 'new row for relation "tickets" violates check constraint "tickets_title_not_blank"',
  'a ticket title cannot be blank');
select throws_ok(
  $$ insert into public.tickets (account_id, title, category) values (tests.account_id('team'), 'Blank category', '') $$,
  '23514', 'new row for relation "tickets" violates check constraint "tickets_category_not_blank"',
  'a ticket category cannot be blank');
select throws_ok(
  $$ insert into public.tickets (account_id, title, customer_email)
     values (tests.account_id('team'), 'No at', 'customer.example.com') $$,
  '23514', 'new row for relation "tickets" violates check constraint "tickets_customer_email_format"',
  'a customer email must look like an address');
select throws_ok(
  $$ insert into public.tickets (account_id, title) values (tests.account_id('team'), repeat('x', 256)) $$,
  '22001', 'value too long for type character varying(255)',
  'a ticket title is at most 255 characters');
select throws_ok(
  $$ insert into public.tickets (account_id, title, priority) values (tests.account_id('team'), 'Urgent', 'urgent') $$,
  '22P02', 'invalid input value for enum ticket_priority: "urgent"',
  'a ticket priority is one of the enum''s values');
select throws_ok(
  $$ insert into public.tickets (account_id, title) values ('00000000-0000-4000-8000-00000000dead', 'Orphan') $$,
  '23503', 'insert or update on table "tickets" violates foreign key constraint "tickets_account_id_fkey"',
  'a ticket belongs to an existing account');

/*
 * Timestamps: inserts may carry historical values; updates cannot
 */
insert into public.tickets (id, account_id, title, created_at, updated_at)
values ('00000000-0000-4000-8000-00000000c003', tests.account_id('team'), 'Old ticket',
        '2020-01-01 00:00:00+00', '2020-01-01 00:00:00+00');

update public.tickets
set status = 'closed', created_at = now(), updated_at = '2021-01-01 00:00:00+00'
where id = '00000000-0000-4000-8000-00000000c003';

select is(
  (select created_at from public.tickets where id = '00000000-0000-4000-8000-00000000c003'),
  '2020-01-01 00:00:00+00'::timestamptz,
  'a ticket''s created_at cannot be rewritten by an update');
select is(
  (select updated_at from public.tickets where id = '00000000-0000-4000-8000-00000000c003'),
  now(),
  'updating a ticket stamps updated_at with the current time');

/*
 * Deleting the people and accounts tickets point at
 */
update public.tickets
set resolved_by = tests.user_id('member'), closed_by = tests.user_id('member'), assigned_to = tests.user_id('member')
where id = tests.ticket_id('Printer on fire');
delete from auth.users where id = tests.user_id('member');

select results_eq(
  $$ select assigned_to, resolved_by, closed_by from public.tickets where id = tests.ticket_id('Printer on fire') $$,
  $$ values (null::uuid, null::uuid, null::uuid) $$,
  'deleting a user keeps the tickets they worked on, without their name');

delete from public.accounts where id = tests.account_id('team');

select is_empty(
  $$ select 1 from public.tickets where account_id = tests.account_id('team') $$,
  'deleting an account deletes its tickets');
select is_empty(
  $$ select 1 from public.messages where ticket_id = tests.ticket_id('Printer on fire') $$,
  'and their messages');

select * from finish();
rollback;
