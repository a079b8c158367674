-- public.message_attachments and public.can_read_message: whoever can read
-- a message reads its attachments, members of the ticket's account add them
-- in their own name to replies they wrote (043 has who may attach where),
-- holders of tickets.delete delete them, nobody edits
-- one through the API. Walked as anon, an outsider, a member of another
-- team, a member, the owner and service_role; then the checks that keep
-- object paths and file names safe.
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
  -- A second team, with its own owner, that nobody above belongs to.
  perform tests.create_user('stranger');
  perform tests.create_team_account('stranger', 'elsewhere');

  perform tests.create_ticket(tests.account_id('team'), 'Printer on fire');
  perform tests.create_ticket(tests.account_id('elsewhere'), 'Elsewhere issue');

  -- Replies for the attachments to hang on, with ids the assertions name.
  insert into public.messages (id, ticket_id, author, author_account_id, content)
  values
    ('00000000-0000-4000-8000-00000000a001', tests.ticket_id('Printer on fire'), 'support',
     tests.user_id('member'), 'Manual attached'),
    ('00000000-0000-4000-8000-00000000a002', tests.ticket_id('Elsewhere issue'), 'support',
     tests.user_id('stranger'), 'Log attached'),
    ('00000000-0000-4000-8000-00000000a003', tests.ticket_id('Printer on fire'), 'support',
     tests.user_id('owner'), 'Invoice attached');

  perform tests.create_attachment('00000000-0000-4000-8000-00000000a001', 'manual.pdf', 'member', false);
  perform tests.create_attachment('00000000-0000-4000-8000-00000000a002', 'elsewhere.log', 'stranger', false);
end
$$;

select plan(92);

/*
 * Structure
 */
select has_table('public', 'message_attachments', 'public.message_attachments exists');
select columns_are('public', 'message_attachments',
  array['id', 'message_id', 'object_path', 'file_name', 'content_type', 'size_bytes', 'created_by', 'created_at'],
  'public.message_attachments has exactly its documented columns');
select col_is_pk('public', 'message_attachments', 'id', 'attachments are keyed by id');
select fk_ok('public', 'message_attachments', 'message_id', 'public', 'messages', 'id',
  'an attachment belongs to a message');
select fk_ok('public', 'message_attachments', 'created_by', 'auth', 'users', 'id',
  'an attachment was added by a user');
select col_is_unique('public', 'message_attachments', 'object_path',
  'two attachments never share an object in the bucket');
select col_type_is('public', 'message_attachments', 'size_bytes', 'bigint', 'sizes are bigints');
select col_not_null('public', 'message_attachments', 'object_path', 'every attachment names its object');
select col_default_is('public', 'message_attachments', 'created_by', 'auth.uid()',
  'created_by defaults to the signed-in user');
select has_index('public', 'message_attachments', 'ix_message_attachments_message_id', array['message_id'],
  'attachments are indexed by message');

select is(
  (select array_agg(a.attname::text order by a.attname)
   from pg_attribute a
   where a.attrelid = 'public.message_attachments'::regclass and a.attnum > 0 and not a.attisdropped
     and has_column_privilege('authenticated', a.attrelid, a.attnum, 'INSERT')),
  array['content_type', 'created_by', 'file_name', 'id', 'message_id', 'object_path', 'size_bytes'],
  'authenticated may insert every column of an attachment but its timestamp');
select is_empty($$
  select a.attname from pg_attribute a
  where a.attrelid = 'public.message_attachments'::regclass and a.attnum > 0 and not a.attisdropped
    and has_column_privilege('authenticated', a.attrelid, a.attnum, 'UPDATE')
$$, 'authenticated cannot update any column of message_attachments');

select policies_are('public', 'message_attachments',
  array['Attachments are viewable by those who can read their message',
        'Attachments can be added by the author of their message',
        'Attachments are deletable by members with tickets.delete'],
  'message_attachments has its read, insert and delete policies only');
select trigger_is('public', 'message_attachments', 'check_message_attachment_path',
  'kit', 'check_message_attachment_path',
  'object paths are checked against their message by kit.check_message_attachment_path');

select isnt_definer('public', 'can_read_message', array['uuid'],
  'can_read_message runs as the caller, whose RLS already limits the messages it sees');
select volatility_is('public', 'can_read_message', array['uuid'], 'stable',
  'can_read_message is stable, so policies may call it once per row cheaply');
select function_privs_are('public', 'can_read_message', array['uuid'], 'anon',
  array[]::text[], 'anon cannot call can_read_message');
select function_privs_are('public', 'can_read_message', array['uuid'], 'authenticated',
  array['EXECUTE'], 'authenticated can call can_read_message');
select function_privs_are('public', 'can_read_message', array['uuid'], 'service_role',
  array['EXECUTE'], 'service_role can call can_read_message');

/*
 * anon
 */
select tests.authenticate_as_anon();

select tests.denied(
  $$ select * from public.message_attachments $$,
  'message_attachments', 'anon cannot read attachments');
select tests.denied(
  $$ insert into public.message_attachments (message_id, object_path, file_name, content_type, size_bytes)
     values ('00000000-0000-4000-8000-00000000a001',
             tests.attachment_path(tests.account_id('team'), '00000000-0000-4000-8000-00000000a001', 'anon.exe'),
             'anon.exe', 'application/octet-stream', 10) $$,
  'message_attachments', 'anon cannot add attachments');
select tests.denied(
  $$ update public.message_attachments set file_name = 'renamed.pdf' $$,
  'message_attachments', 'anon cannot update attachments');
select tests.denied(
  $$ delete from public.message_attachments $$,
  'message_attachments', 'anon cannot delete attachments');
select throws_ok(
  $$ select public.can_read_message('00000000-0000-4000-8000-00000000a001') $$,
  '42501', 'permission denied for function can_read_message',
  'anon cannot call can_read_message');

/*
 * outsider: signed in, member of nothing
 */
select tests.authenticate_as('outsider');

select is_empty(
  $$ select * from public.message_attachments $$,
  'an outsider sees no attachments at all');
select ok(not public.can_read_message('00000000-0000-4000-8000-00000000a001'),
  'an outsider cannot read a team''s message');
select throws_ok(
  $$ insert into public.message_attachments (message_id, object_path, file_name, content_type, size_bytes)
     values ('00000000-0000-4000-8000-00000000a001',
             tests.attachment_path(tests.account_id('team'), '00000000-0000-4000-8000-00000000a001', 'outsider.pdf'),
             'outsider.pdf', 'application/pdf', 10) $$,
  '42501', 'new row violates row-level security policy for table "message_attachments"',
  'an outsider cannot attach a file to a team''s message');
select tests.denied(
  $$ update public.message_attachments set file_name = 'renamed.pdf' $$,
  'message_attachments', 'an outsider cannot update attachments');
select is_empty(
  $$ delete from public.message_attachments where id = tests.attachment_id('manual.pdf') returning id $$,
  'an outsider''s delete of a team''s attachment matches no rows');

/*
 * stranger: owner of another team
 */
select tests.authenticate_as('stranger');

select results_eq(
  $$ select id from public.message_attachments $$,
  $$ values (tests.attachment_id('elsewhere.log')) $$,
  'a member of another team sees their own team''s attachments and none of this team''s');
select ok(not public.can_read_message('00000000-0000-4000-8000-00000000a001'),
  'a member of another team cannot read this team''s message');
select throws_ok(
  $$ insert into public.message_attachments (message_id, object_path, file_name, content_type, size_bytes)
     values ('00000000-0000-4000-8000-00000000a001',
             tests.attachment_path(tests.account_id('team'), '00000000-0000-4000-8000-00000000a001', 'stranger.pdf'),
             'stranger.pdf', 'application/pdf', 10) $$,
  '42501', 'new row violates row-level security policy for table "message_attachments"',
  'a member of another team cannot attach a file to this team''s message');
select is_empty(
  $$ delete from public.message_attachments where id = tests.attachment_id('manual.pdf') returning id $$,
  'a member of another team, even its owner, cannot delete this team''s attachment');

/*
 * member: reads and adds, deletes nothing
 */
select tests.authenticate_as('member');

select results_eq(
  $$ select id from public.message_attachments $$,
  $$ values (tests.attachment_id('manual.pdf')) $$,
  'a member sees the attachments on their team''s messages, and nothing else');
select ok(public.can_read_message('00000000-0000-4000-8000-00000000a001'),
  'a member can read their team''s message');
select ok(not public.can_read_message('00000000-0000-4000-8000-00000000a002'),
  'a member cannot read another team''s message');
select ok(not public.can_read_message('00000000-0000-4000-8000-00000000dead'),
  'nobody can read a message that does not exist');
select lives_ok(
  $$ insert into public.message_attachments (id, message_id, object_path, file_name, content_type, size_bytes)
     values ('00000000-0000-4000-8000-00000000b001', '00000000-0000-4000-8000-00000000a001',
             tests.attachment_path(tests.account_id('team'), '00000000-0000-4000-8000-00000000a001', 'photo.png'),
             'Photo of the fire.png', 'image/png', 2048) $$,
  'a member can attach a file to a reply they wrote on their team''s ticket');
select is(
  (select created_by from public.message_attachments where id = '00000000-0000-4000-8000-00000000b001'),
  tests.user_id('member'),
  'an attachment a member adds is in their name without saying so');
select throws_ok(
  $$ insert into public.message_attachments (message_id, object_path, file_name, content_type, size_bytes, created_by)
     values ('00000000-0000-4000-8000-00000000a001',
             tests.attachment_path(tests.account_id('team'), '00000000-0000-4000-8000-00000000a001', 'boss.pdf'),
             'boss.pdf', 'application/pdf', 10, tests.user_id('owner')) $$,
  '42501', 'new row violates row-level security policy for table "message_attachments"',
  'a member cannot add an attachment in a colleague''s name');
select throws_ok(
  $$ insert into public.message_attachments (message_id, object_path, file_name, content_type, size_bytes, created_by)
     values ('00000000-0000-4000-8000-00000000a001',
             tests.attachment_path(tests.account_id('team'), '00000000-0000-4000-8000-00000000a001', 'nobody.pdf'),
             'nobody.pdf', 'application/pdf', 10, null) $$,
  '42501', 'new row violates row-level security policy for table "message_attachments"',
  'a member cannot add an attachment in nobody''s name');
select throws_ok(
  $$ insert into public.message_attachments (message_id, object_path, file_name, content_type, size_bytes)
     values ('00000000-0000-4000-8000-00000000a002',
             tests.attachment_path(tests.account_id('elsewhere'), '00000000-0000-4000-8000-00000000a002', 'mine.pdf'),
             'mine.pdf', 'application/pdf', 10) $$,
  '42501', 'new row violates row-level security policy for table "message_attachments"',
  'a member cannot attach a file to another team''s message');
select throws_ok(
  $$ insert into public.message_attachments (message_id, object_path, file_name, content_type, size_bytes)
     values ('00000000-0000-4000-8000-00000000a001',
             tests.attachment_path(tests.account_id('elsewhere'), '00000000-0000-4000-8000-00000000a001', 'misfiled.pdf'),
             'misfiled.pdf', 'application/pdf', 10) $$,
  '23514', 'an attachment''s object path must start with its account and message',
  'a member cannot file an attachment under another account''s folder');
select throws_ok(
  $$ insert into public.message_attachments (message_id, object_path, file_name, content_type, size_bytes)
     values ('00000000-0000-4000-8000-00000000a001',
             tests.attachment_path(tests.account_id('team'), '00000000-0000-4000-8000-00000000a002', 'claimed.log'),
             'claimed.log', 'text/plain', 10) $$,
  '23514', 'an attachment''s object path must start with its account and message',
  'a member cannot file an attachment under another message''s folder');
select throws_ok(
  $$ insert into public.message_attachments (message_id, object_path, file_name, content_type, size_bytes)
     values ('00000000-0000-4000-8000-00000000a001', tests.attachment_object_path('elsewhere.log'),
             'elsewhere.log', 'text/plain', 10) $$,
  '23505', 'duplicate key value violates unique constraint "message_attachments_object_path_key"',
  'a member cannot register an object another attachment already names');
select tests.denied(
  $$ insert into public.message_attachments (message_id, object_path, file_name, content_type, size_bytes, created_at)
     values ('00000000-0000-4000-8000-00000000a001',
             tests.attachment_path(tests.account_id('team'), '00000000-0000-4000-8000-00000000a001', 'old.pdf'),
             'old.pdf', 'application/pdf', 10, '2020-01-01') $$,
  'message_attachments', 'a member cannot backdate an attachment');
select tests.denied(
  $$ update public.message_attachments set file_name = 'renamed.pdf' where id = tests.attachment_id('manual.pdf') $$,
  'message_attachments', 'a member cannot edit an attachment');
select is_empty(
  $$ delete from public.message_attachments where id = tests.attachment_id('manual.pdf') returning id $$,
  'a member without tickets.delete cannot delete an attachment');

/*
 * owner: holds tickets.delete on the team
 */
select tests.authenticate_as('owner');

select set_eq(
  $$ select id from public.message_attachments $$,
  $$ values (tests.attachment_id('manual.pdf')), ('00000000-0000-4000-8000-00000000b001'::uuid) $$,
  'an owner sees every attachment on their team''s messages, including a colleague''s');
select ok(public.can_read_message('00000000-0000-4000-8000-00000000a001'),
  'an owner can read their team''s message');
select lives_ok(
  $$ insert into public.message_attachments (id, message_id, object_path, file_name, content_type, size_bytes)
     values ('00000000-0000-4000-8000-00000000b002', '00000000-0000-4000-8000-00000000a003',
             tests.attachment_path(tests.account_id('team'), '00000000-0000-4000-8000-00000000a003', 'invoice.pdf'),
             'invoice.pdf', 'application/pdf', 4096) $$,
  'an owner can attach a file to a reply they wrote on their team''s ticket');
select tests.denied(
  $$ update public.message_attachments set size_bytes = 1 where id = tests.attachment_id('manual.pdf') $$,
  'message_attachments', 'an owner cannot edit an attachment either');
select is_empty(
  $$ delete from public.message_attachments where id = tests.attachment_id('elsewhere.log') returning id $$,
  'an owner cannot delete another team''s attachment');
select results_eq(
  $$ delete from public.message_attachments where id = '00000000-0000-4000-8000-00000000b002' returning file_name $$,
  $$ values ('invoice.pdf') $$,
  'an owner can delete an attachment on their team''s message');

/*
 * service_role: trusted server code, bypasses RLS
 */
select tests.authenticate_as_service_role();

select set_eq(
  $$ select id from public.message_attachments
     where message_id in ('00000000-0000-4000-8000-00000000a001', '00000000-0000-4000-8000-00000000a002') $$,
  $$ values (tests.attachment_id('manual.pdf')), (tests.attachment_id('elsewhere.log')),
            ('00000000-0000-4000-8000-00000000b001'::uuid) $$,
  'service_role sees every attachment');
select ok(not public.can_read_message('00000000-0000-4000-8000-00000000a001'),
  'service_role itself reads no message through can_read_message: it has no user');
select lives_ok(
  $$ insert into public.message_attachments (id, message_id, object_path, file_name, content_type, size_bytes)
     values ('00000000-0000-4000-8000-00000000b003', '00000000-0000-4000-8000-00000000a002',
             tests.attachment_path(tests.account_id('elsewhere'), '00000000-0000-4000-8000-00000000a002', 'server.txt'),
             'server.txt', 'text/plain', 12) $$,
  'service_role can attach a file to any message');
select is(
  (select created_by from public.message_attachments where id = '00000000-0000-4000-8000-00000000b003'),
  null::uuid,
  'an attachment service_role adds is in nobody''s name unless it says so');
select results_eq(
  $$ update public.message_attachments set file_name = 'server log.txt'
     where id = '00000000-0000-4000-8000-00000000b003' returning file_name $$,
  $$ values ('server log.txt') $$,
  'service_role can correct an attachment');
select throws_ok(
  $$ update public.message_attachments
     set object_path = tests.attachment_path(tests.account_id('team'), '00000000-0000-4000-8000-00000000a002', 'server.txt')
     where id = '00000000-0000-4000-8000-00000000b003' $$,
  '23514', 'an attachment''s object path must start with its account and message',
  'service_role cannot move an attachment into another account''s folder either');
select results_eq(
  $$ delete from public.message_attachments where id = '00000000-0000-4000-8000-00000000b003' returning file_name $$,
  $$ values ('server log.txt') $$,
  'service_role can delete any attachment');

/*
 * What the denied and filtered writes left behind
 */
select tests.clear_authentication();

select set_eq(
  $$ select file_name, created_by from public.message_attachments
     where message_id in ('00000000-0000-4000-8000-00000000a001', '00000000-0000-4000-8000-00000000a002') $$,
  $$ values ('manual.pdf', tests.user_id('member')),
            ('Photo of the fire.png', tests.user_id('member')),
            ('elsewhere.log', tests.user_id('stranger')) $$,
  'exactly the setup''s attachments and the member''s photo remain, each in its author''s name');

/*
 * Object paths: <account id>/<message id>/<uuid>/<file name>, nothing else
 */
create function pg_temp.attach(object_path text)
returns void
language sql
as $$
  insert into public.message_attachments (message_id, object_path, file_name, content_type, size_bytes)
  values ('00000000-0000-4000-8000-00000000a001', attach.object_path, 'file.txt', 'text/plain', 1);
$$;

create function pg_temp.team_folder()
returns text
language sql
as $$
  select tests.account_id('team') || '/00000000-0000-4000-8000-00000000a001/00000000-0000-4000-8000-0000000000f1/';
$$;

select lives_ok(
  $$ select pg_temp.attach(pg_temp.team_folder() || 'Report_v2-final.(1).tar.gz') $$,
  'a file name of letters, digits and S3''s safe punctuation is a valid path segment');
select throws_ok(
  $$ select pg_temp.attach('/' || pg_temp.team_folder() || 'rooted.txt') $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_object_path_format"',
  'an object path cannot start with a slash');
select throws_ok(
  $$ select pg_temp.attach(pg_temp.team_folder() || '..') $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_object_path_format"',
  'an object path cannot end in ..');
select throws_ok(
  $$ select pg_temp.attach(pg_temp.team_folder() || 'a..b.txt') $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_object_path_format"',
  'an object path cannot contain .. anywhere');
select throws_ok(
  $$ select pg_temp.attach(pg_temp.team_folder() || '.') $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_object_path_format"',
  'an object path''s file name cannot be .');
select throws_ok(
  $$ select pg_temp.attach(pg_temp.team_folder() || 'sub/dir.txt') $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_object_path_format"',
  'an object path has exactly four segments');
select throws_ok(
  $$ select pg_temp.attach(pg_temp.team_folder() || E'line\nbreak.txt') $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_object_path_format"',
  'an object path cannot hold control characters');
select throws_ok(
  $$ select pg_temp.attach(pg_temp.team_folder() || 'two words.txt') $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_object_path_format"',
  'an object path''s file name has no spaces (the server replaces them)');
select throws_ok(
  $$ select pg_temp.attach(pg_temp.team_folder() || 'résumé.pdf') $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_object_path_format"',
  'an object path''s file name is ASCII (the server transliterates the rest)');
select throws_ok(
  $$ select pg_temp.attach(pg_temp.team_folder() || repeat('x', 256)) $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_object_path_format"',
  'an object path''s file name is at most 255 characters');
select throws_ok(
  $$ select pg_temp.attach(tests.account_id('team') || '/00000000-0000-4000-8000-00000000a001/no-uuid.txt') $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_object_path_format"',
  'an object path has a uuid folder between the message and the file');
select throws_ok(
  $$ select pg_temp.attach(upper(pg_temp.team_folder()) || 'upper.txt') $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_object_path_format"',
  'an object path''s uuids are in lowercase text form, as the server writes them');
select throws_ok(
  $$ select pg_temp.attach(pg_temp.team_folder() || 'Report_v2-final.(1).tar.gz') $$,
  '23505', 'duplicate key value violates unique constraint "message_attachments_object_path_key"',
  'two attachments cannot share an object path');

/*
 * File names, content types and sizes
 */
create function pg_temp.attach_file(file_name text, content_type text, size_bytes bigint)
returns void
language sql
as $$
  insert into public.message_attachments (message_id, object_path, file_name, content_type, size_bytes)
  values (
    '00000000-0000-4000-8000-00000000a001',
    pg_temp.team_folder() || md5(random()::text) || '.bin',
    attach_file.file_name,
    attach_file.content_type,
    attach_file.size_bytes
  );
$$;

select lives_ok(
  $$ select pg_temp.attach_file('Résumé (final) #2.pdf', 'application/pdf', 10485760) $$,
  'a file name may hold spaces and non-ASCII letters, and a file may be as large as the bucket takes');
select throws_ok(
  $$ select pg_temp.attach_file('', 'text/plain', 1) $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_file_name_format"',
  'a file name cannot be empty');
select throws_ok(
  $$ select pg_temp.attach_file('   ', 'text/plain', 1) $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_file_name_format"',
  'a file name cannot be blank');
select throws_ok(
  $$ select pg_temp.attach_file(repeat('x', 256), 'text/plain', 1) $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_file_name_format"',
  'a file name is at most 255 characters');
select throws_ok(
  $$ select pg_temp.attach_file('../../etc/passwd', 'text/plain', 1) $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_file_name_format"',
  'a file name cannot hold a slash');
select throws_ok(
  $$ select pg_temp.attach_file(E'evil\r\nname.txt', 'text/plain', 1) $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_file_name_format"',
  'a file name cannot hold control characters');
select throws_ok(
  $$ select pg_temp.attach_file('file.txt', '', 1) $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_content_type_format"',
  'a content type cannot be empty');
select throws_ok(
  $$ select pg_temp.attach_file('file.txt', 'plain text', 1) $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_content_type_format"',
  'a content type is a type/subtype pair');
select throws_ok(
  $$ select pg_temp.attach_file('file.txt', E'text/html\r\nSet-Cookie: a=b', 1) $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_content_type_format"',
  'a content type cannot smuggle a header in');
select throws_ok(
  $$ select pg_temp.attach_file('file.txt', 'application/' || repeat('x', 250), 1) $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_content_type_format"',
  'a content type is at most 255 characters');
select throws_ok(
  $$ select pg_temp.attach_file('file.txt', 'text/plain', 0) $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_size_bytes_range"',
  'an attachment is not empty');
select throws_ok(
  $$ select pg_temp.attach_file('file.txt', 'text/plain', -1) $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_size_bytes_range"',
  'an attachment''s size is not negative');
select throws_ok(
  $$ select pg_temp.attach_file('file.txt', 'text/plain', 52428801) $$,
  '23514', 'new row for relation "message_attachments" violates check constraint "message_attachments_size_bytes_range"',
  'an attachment is at most 50 MiB');
select throws_ok(
  $$ insert into public.message_attachments (message_id, object_path, file_name, content_type, size_bytes)
     values ('00000000-0000-4000-8000-00000000dead',
             tests.attachment_path(tests.account_id('team'), '00000000-0000-4000-8000-00000000dead', 'lost.txt'),
             'lost.txt', 'text/plain', 1) $$,
  '23503', 'insert or update on table "message_attachments" violates foreign key constraint "message_attachments_message_id_fkey"',
  'an attachment belongs to an existing message');

/*
 * Deleting what attachments point at
 */
delete from auth.users where id = tests.user_id('member');

select results_eq(
  $$ select created_by from public.message_attachments where id = tests.attachment_id('manual.pdf') $$,
  $$ values (null::uuid) $$,
  'deleting a user keeps the files they attached, without their name');

delete from public.messages where id = '00000000-0000-4000-8000-00000000a002';

select is_empty(
  $$ select 1 from public.message_attachments where id = tests.attachment_id('elsewhere.log') $$,
  'deleting a message deletes its attachments');

delete from public.tickets where id = tests.ticket_id('Printer on fire');

select is_empty(
  $$ select 1 from public.message_attachments where message_id = '00000000-0000-4000-8000-00000000a001' $$,
  'deleting a ticket deletes its messages'' attachments');

select * from finish();
rollback;
