-- The attachments bucket and its policies on storage.objects: a client
-- using Supabase Storage directly gets the answer public.message_attachments
-- gives. Files are read by whoever can read their message, uploaded by
-- whoever registered their path first (a member of the ticket's account),
-- deleted with tickets.delete, and never overwritten or moved. Walked as anon, an
-- outsider, a member of another team, a member, the owner and service_role,
-- the way Storage runs its queries (as the request's role, with its claims).
begin;
create extension if not exists pgtap;
\ir _helpers.psql

do $$
declare
  gone_id uuid;
  unregistered_id uuid;
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

  insert into public.messages (id, ticket_id, author, author_account_id, content)
  values
    ('00000000-0000-4000-8000-00000000a001', tests.ticket_id('Printer on fire'), 'support',
     tests.user_id('member'), 'Manual attached'),
    ('00000000-0000-4000-8000-00000000a002', tests.ticket_id('Elsewhere issue'), 'support',
     tests.user_id('stranger'), 'Log attached'),
    ('00000000-0000-4000-8000-00000000a003', tests.ticket_id('Printer on fire'), 'support',
     tests.user_id('owner'), 'Screenshot to follow');

  -- Uploaded files, each registered on its message.
  perform tests.create_attachment('00000000-0000-4000-8000-00000000a001', 'manual.pdf', 'member');
  perform tests.create_attachment('00000000-0000-4000-8000-00000000a002', 'elsewhere.log', 'stranger');
  -- Registered, not uploaded yet: what the upload assertions upload.
  perform tests.create_attachment('00000000-0000-4000-8000-00000000a001', 'pending.png', 'member', false);
  perform tests.create_attachment('00000000-0000-4000-8000-00000000a003', 'pending-owner.png', 'owner', false);
  perform tests.create_attachment('00000000-0000-4000-8000-00000000a002', 'pending-elsewhere.png', 'stranger', false);
  -- A file whose row is gone (deleted before the file, or with its
  -- ticket): still in the bucket, named by no attachment.
  gone_id := tests.create_attachment('00000000-0000-4000-8000-00000000a002', 'gone.log', 'stranger');
  delete from public.message_attachments where id = gone_id;
  -- A file in the team's folder that no attachment names (the store takes
  -- no file nobody registered, so: registered, uploaded, row deleted).
  unregistered_id := tests.create_attachment('00000000-0000-4000-8000-00000000a001', 'unregistered.txt', 'member');
  delete from public.message_attachments where id = unregistered_id;
  -- Another bucket, holding an object under the very name of a team file.
  insert into storage.buckets (id, name, public) values ('other-bucket', 'other-bucket', false);
  perform tests.create_storage_object('other-bucket', tests.attachment_object_path('manual.pdf'));
end
$$;

-- Objects filed under this test's two teams: service_role and postgres
-- also see whatever else the database holds (dev/seed.sql, say).
create function pg_temp.in_test_accounts(name text)
returns boolean
language sql
stable
as $$
  select split_part(in_test_accounts.name, '/', 1) in (tests.account_id('team')::text, tests.account_id('elsewhere')::text);
$$;

select plan(50);

-- Every statement below is one Storage runs for a request, and Storage sets
-- this on each of them (its own deletes get past its protection against
-- direct ones, which is checked at the end).
set local storage.allow_delete_query = 'true';

/*
 * The bucket and the policies
 */
select results_eq(
  $$ select name, public, file_size_limit from storage.buckets where id = 'attachments' $$,
  $$ values ('attachments'::text, false, 10485760::bigint) $$,
  'the attachments bucket exists, is private and takes files up to 10 MiB');
select ok(
  (select relrowsecurity from pg_class where oid = 'storage.objects'::regclass),
  'storage.objects keeps row level security on');

select policy_cmd_is('storage', 'objects', 'Attachment files are readable, not signable, by their readers', 'select',
  'attachment files have a read policy');
select policy_cmd_is('storage', 'objects', 'Attachment files can be uploaded by whoever registered them', 'insert',
  'attachment files have an upload policy');
select policy_cmd_is('storage', 'objects', 'Attachment files are deletable by members with tickets.delete', 'delete',
  'attachment files have a delete policy');
select is_empty($$
  select policyname from pg_policies
  where schemaname = 'storage' and tablename = 'objects'
    and (qual like '%attachments%' or with_check like '%attachments%')
    and not roles <@ array['authenticated']::name[]
$$, 'the attachment file policies apply to authenticated only');
select is_empty($$
  select policyname from pg_policies
  where schemaname = 'storage' and tablename = 'objects'
    and cmd in ('UPDATE', 'ALL')
    and (qual like '%attachments%' or with_check like '%attachments%')
$$, 'no policy lets anyone overwrite, move or rename an attachment file');

/*
 * anon: Storage grants it the table; no policy lets it near this bucket
 */
select tests.authenticate_as_anon();

select is_empty(
  $$ select name from storage.objects where bucket_id = 'attachments' $$,
  'anon sees no attachment files');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name) values ('attachments', tests.attachment_object_path('pending.png')) $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'anon cannot upload an attachment file, even to a registered path');
select is_empty(
  $$ update storage.objects set metadata = '{}' where bucket_id = 'attachments' returning name $$,
  'anon cannot change attachment files');
select is_empty(
  $$ delete from storage.objects where bucket_id = 'attachments' returning name $$,
  'anon cannot delete attachment files');

/*
 * outsider: signed in, member of nothing
 */
select tests.authenticate_as('outsider');

select is_empty(
  $$ select name from storage.objects where bucket_id = 'attachments' $$,
  'an outsider sees no attachment files');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name) values ('attachments', tests.attachment_object_path('pending.png')) $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'an outsider cannot upload to a team''s registered path');
select is_empty(
  $$ update storage.objects set metadata = '{}' where bucket_id = 'attachments' returning name $$,
  'an outsider cannot change attachment files');
select is_empty(
  $$ delete from storage.objects where bucket_id = 'attachments' returning name $$,
  'an outsider cannot delete attachment files');

/*
 * stranger: owner of another team
 */
select tests.authenticate_as('stranger');

select results_eq(
  $$ select name from storage.objects where bucket_id = 'attachments' $$,
  $$ values (tests.attachment_object_path('elsewhere.log')) $$,
  'a member of another team sees their own team''s files and none of this team''s');
select set_eq(
  $$ select name from storage.objects where bucket_id = 'attachments' $$,
  $$ select t.object_path from tests.attachments t
     where t.file_name in ('manual.pdf', 'elsewhere.log') and public.can_read_message(t.message_id) $$,
  'Storage gives a member of another team the same answer as can_read_message for every uploaded file');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name) values ('attachments', tests.attachment_object_path('pending.png')) $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'a member of another team cannot upload to this team''s registered path');
select is_empty(
  $$ delete from storage.objects where name = tests.attachment_object_path('manual.pdf') returning name $$,
  'a member of another team, even its owner, cannot delete this team''s file');
select is_empty(
  $$ select name from storage.objects where name = tests.attachment_object_path('gone.log') $$,
  'the owner of a file''s team cannot read it once its row is gone');
select is_empty(
  $$ delete from storage.objects where name = tests.attachment_object_path('gone.log') returning name $$,
  'nor delete it: only service_role removes a file whose row is gone');

/*
 * member: reads and uploads, deletes nothing
 */
select tests.authenticate_as('member');

select results_eq(
  $$ select name from storage.objects where bucket_id = 'attachments' $$,
  $$ values (tests.attachment_object_path('manual.pdf')) $$,
  'a member sees the uploaded files of their team''s messages, and nothing else');
select set_eq(
  $$ select name from storage.objects where bucket_id = 'attachments' $$,
  $$ select t.object_path from tests.attachments t
     where t.file_name in ('manual.pdf', 'elsewhere.log') and public.can_read_message(t.message_id) $$,
  'Storage gives a member the same answer as can_read_message for every uploaded file');
select is_empty(
  $$ select name from storage.objects
     where name = tests.attachment_path(tests.account_id('team'), '00000000-0000-4000-8000-00000000a001', 'unregistered.txt') $$,
  'a member cannot read a file no attachment names, even in their team''s folder');
select is_empty(
  $$ select name from storage.objects where bucket_id = 'other-bucket' $$,
  'the attachment policies say nothing about another bucket, even for an identical name');
select results_eq(
  $$ insert into storage.objects (bucket_id, name, owner_id)
     values ('attachments', tests.attachment_object_path('pending.png'), tests.user_id('member')::text)
     returning name $$,
  $$ values (tests.attachment_object_path('pending.png')) $$,
  'a member can upload to a path they registered, and read it back as Storage does');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name)
     values ('attachments', tests.attachment_path(tests.account_id('team'), '00000000-0000-4000-8000-00000000a001', 'sneaky.txt')) $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'a member cannot upload to a path nobody registered, even in their team''s folder');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name) values ('attachments', tests.attachment_object_path('pending-elsewhere.png')) $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'a member cannot upload to a path registered on another team''s message');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name) values ('other-bucket', tests.attachment_object_path('pending-owner.png')) $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'a registered path opens the attachments bucket only');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name, metadata)
     values ('attachments', tests.attachment_object_path('manual.pdf'), '{"size": 666}')
     on conflict (bucket_id, name) do update set metadata = excluded.metadata $$,
  '42501', 'new row violates row-level security policy (USING expression) for table "objects"',
  'a member cannot overwrite an uploaded file (upsert)');
select is_empty(
  $$ update storage.objects set name = tests.attachment_object_path('pending-owner.png')
     where name = tests.attachment_object_path('manual.pdf') returning name $$,
  'a member cannot move or rename a file');
select is_empty(
  $$ delete from storage.objects where name = tests.attachment_object_path('manual.pdf') returning name $$,
  'a member without tickets.delete cannot delete a file');
select throws_ok(
  $$ insert into public.message_attachments (message_id, object_path, file_name, content_type, size_bytes)
     values ('00000000-0000-4000-8000-00000000a001', tests.attachment_object_path('gone.log'), 'gone.log', 'text/plain', 1) $$,
  '23514', 'an attachment''s object path must start with its account and message',
  'a member cannot claim another team''s left-over file by registering its path');
select is_empty(
  $$ select name from storage.objects where name = tests.attachment_object_path('gone.log') $$,
  'so another team''s left-over file stays out of a member''s reach');

/*
 * owner: holds tickets.delete on the team
 */
select tests.authenticate_as('owner');

select set_eq(
  $$ select name from storage.objects where bucket_id = 'attachments' $$,
  $$ values (tests.attachment_object_path('manual.pdf')), (tests.attachment_object_path('pending.png')) $$,
  'an owner sees every uploaded file of their team, including the one a colleague just uploaded');
select lives_ok(
  $$ insert into storage.objects (bucket_id, name) values ('attachments', tests.attachment_object_path('pending-owner.png')) $$,
  'an owner can upload to a path they registered');
select is_empty(
  $$ update storage.objects set metadata = '{"size": 2}'
     where name = tests.attachment_object_path('manual.pdf') returning name $$,
  'an owner cannot change a file either');
select is_empty(
  $$ delete from storage.objects where name = tests.attachment_object_path('elsewhere.log') returning name $$,
  'an owner cannot delete another team''s file');
select is_empty(
  $$ delete from storage.objects
     where name = tests.attachment_path(tests.account_id('team'), '00000000-0000-4000-8000-00000000a001', 'unregistered.txt')
     returning name $$,
  'an owner cannot delete a file no attachment names, even in their team''s folder');
select results_eq(
  $$ delete from storage.objects where name = tests.attachment_object_path('pending-owner.png') returning name $$,
  $$ values (tests.attachment_object_path('pending-owner.png')) $$,
  'an owner can delete a file on their team''s message');

/*
 * The file follows its row: delete the row and the file is out of reach
 */
select results_eq(
  $$ delete from public.message_attachments where id = tests.attachment_id('manual.pdf') returning file_name $$,
  $$ values ('manual.pdf') $$,
  'an owner can delete an attachment''s row before its file');
select is_empty(
  $$ select name from storage.objects where name = tests.attachment_object_path('manual.pdf') $$,
  'then nobody signed in can read the file any more');
select is_empty(
  $$ delete from storage.objects where name = tests.attachment_object_path('manual.pdf') returning name $$,
  'nor delete it: remove the file first, then the row');

/*
 * service_role: trusted server code, bypasses RLS
 */
select tests.authenticate_as_service_role();

select set_eq(
  $$ select name from storage.objects where bucket_id = 'attachments' and pg_temp.in_test_accounts(name) $$,
  $$ values (tests.attachment_object_path('manual.pdf')), (tests.attachment_object_path('pending.png')),
            (tests.attachment_object_path('elsewhere.log')), (tests.attachment_object_path('gone.log')),
            (tests.attachment_path(tests.account_id('team'), '00000000-0000-4000-8000-00000000a001', 'unregistered.txt')) $$,
  'service_role sees every file in the bucket, registered or not');
select lives_ok(
  $$ insert into storage.objects (bucket_id, name) values ('attachments', tests.attachment_object_path('pending-elsewhere.png')) $$,
  'service_role can upload anywhere');
select results_eq(
  $$ update storage.objects set metadata = tests.storage_metadata('text/plain', 1) || '{"cacheControl": "no-cache"}'
     where name = tests.attachment_object_path('pending-elsewhere.png') returning name $$,
  $$ values (tests.attachment_object_path('pending-elsewhere.png')) $$,
  'service_role can change a file''s metadata (within what its row says)');
select results_eq(
  $$ with removed as (
       delete from storage.objects
       where bucket_id = 'attachments'
         and name in (tests.attachment_object_path('manual.pdf'), tests.attachment_object_path('gone.log'))
       returning name
     )
     select name from removed order by name $$,
  $$ select name from unnest(array[tests.attachment_object_path('manual.pdf'), tests.attachment_object_path('gone.log')]) as name
     order by name $$,
  'service_role can remove the files left without a row');

/*
 * What the denied and filtered writes left behind
 */
select tests.clear_authentication();

-- Not through Storage: refused whoever asks, as on Supabase, since the
-- stored bytes would be left behind.
set local storage.allow_delete_query = 'false';
select throws_ok(
  $$ delete from storage.objects where bucket_id = 'attachments' $$,
  '42501', 'Direct deletion from storage tables is not allowed. Use the Storage API instead.',
  'a delete that does not come through Storage is refused, even for the project owner');

select set_eq(
  $$ select name from storage.objects where bucket_id = 'attachments' and pg_temp.in_test_accounts(name) $$,
  $$ values (tests.attachment_object_path('pending.png')), (tests.attachment_object_path('elsewhere.log')),
            (tests.attachment_object_path('pending-elsewhere.png')),
            (tests.attachment_path(tests.account_id('team'), '00000000-0000-4000-8000-00000000a001', 'unregistered.txt')) $$,
  'the bucket holds exactly the files the allowed writes left there');
select results_eq(
  $$ select name, metadata from storage.objects where bucket_id = 'other-bucket' $$,
  $$ select tests.attachment_object_path('manual.pdf'), tests.storage_metadata('text/plain', 1) $$,
  'the other bucket is untouched');

select * from finish();
rollback;
