-- Signed download URLs come only from attachment-urls: Storage signs one
-- for whoever its SELECT on storage.objects finds the object for, and under
-- its two signing operations the read policy finds nothing for anyone
-- signed in, so no member can mint a URL with their own JWT and their own
-- expiresIn. Every other read (download with the JWT, info, list, the reads
-- behind uploads and deletes) works as before, checked at each request, so
-- it ends with the membership. Queries are run as Storage runs them: the
-- caller's role and claims and the operation's name.
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

  perform tests.create_ticket(tests.account_id('team'), 'Printer on fire');
  insert into public.messages (id, ticket_id, author, author_account_id, content)
  values ('00000000-0000-4000-8000-00000000a001', tests.ticket_id('Printer on fire'), 'support',
          tests.user_id('member'), 'Manual attached');

  perform tests.create_attachment('00000000-0000-4000-8000-00000000a001', 'manual.pdf', 'member');
  perform tests.create_attachment('00000000-0000-4000-8000-00000000a001', 'spare.pdf', 'member');
  perform tests.create_attachment('00000000-0000-4000-8000-00000000a001', 'pending.png', 'member', false);
  perform tests.create_attachment('00000000-0000-4000-8000-00000000a001', 'later.png', 'member', false);
end
$$;

-- What Storage's signing queries find (signObjectUrl: one name;
-- signObjectUrls: a batch), and a download's lookup.
create function pg_temp.found(names text[])
returns setof text
language sql
as $$
  select name from storage.objects where bucket_id = 'attachments' and name = any (found.names);
$$;

create function pg_temp.files()
returns text[]
language sql
stable
as $$
  select array[tests.attachment_object_path('manual.pdf'), tests.attachment_object_path('spare.pdf')];
$$;

select plan(17);

select policy_cmd_is('storage', 'objects',
  'Attachment files are readable, not signable, by their readers', 'select',
  'attachment files have a read policy that leaves out signing');
select set_eq(
  $$ select policyname::text from pg_policies
     where schemaname = 'storage' and tablename = 'objects'
       and (qual like '%attachments%' or with_check like '%attachments%') $$,
  $$ values ('Attachment files are readable, not signable, by their readers'),
            ('Attachment files can be uploaded by whoever registered them'),
            ('Attachment files are deletable by members with tickets.delete') $$,
  'the attachments bucket has exactly its read, upload and delete policies');

/*
 * A member: reads their team's files, signs none of them
 */
select tests.storage_request('storage.object.sign', 'member');
select is_empty(
  $$ select pg_temp.found(array[tests.attachment_object_path('manual.pdf')]) $$,
  'Storage finds no file to sign for a member (POST /object/sign/attachments/<path>)');

select tests.storage_request('storage.object.sign_many', 'member');
select is_empty(
  $$ select pg_temp.found(pg_temp.files()) $$,
  'nor a batch of them (POST /object/sign/attachments, any expiresIn)');

select tests.storage_request('storage.object.get_authenticated', 'member');
select set_eq(
  $$ select pg_temp.found(pg_temp.files()) $$,
  $$ select unnest(pg_temp.files()) $$,
  'a member still downloads their team''s files with their own JWT');

select tests.storage_request('storage.object.info_authenticated', 'member');
select results_eq(
  $$ select pg_temp.found(array[tests.attachment_object_path('manual.pdf')]) $$,
  $$ values (tests.attachment_object_path('manual.pdf')) $$,
  'and reads a file''s info');

select tests.storage_request('storage.object.list', 'member');
select set_eq(
  $$ select name from storage.objects where bucket_id = 'attachments' $$,
  $$ select unnest(pg_temp.files()) $$,
  'and lists them');

select tests.storage_request('storage.object.upload', 'member');
select lives_ok(
  $$ insert into storage.objects (bucket_id, name, owner_id, metadata)
     values ('attachments', tests.attachment_object_path('pending.png'), tests.user_id('member')::text,
             '{"mimetype": "text/plain", "contentLength": 1}') $$,
  'and uploads the file they registered');

select tests.storage_request('storage.object.sign_upload_url', 'member');
select lives_ok(
  $$ insert into storage.objects (bucket_id, name, owner_id, metadata)
     values ('attachments', tests.attachment_object_path('later.png'), tests.user_id('member')::text, '{}') $$,
  'and may ask Storage for an upload URL for it (Storage fixes that URL''s lifetime itself)');

select tests.authenticate_as('member');
select set_eq(
  $$ select pg_temp.found(pg_temp.files()) $$,
  $$ select unnest(pg_temp.files()) $$,
  'outside Storage (no operation named) the read policy reads as before');

/*
 * The owner: every permission, and no signing either
 */
select tests.storage_request('storage.object.sign_many', 'owner');
select is_empty(
  $$ select pg_temp.found(pg_temp.files()) $$,
  'Storage finds no file to sign for the account''s owner either');

select tests.storage_request('storage.object.delete', 'owner');
select results_eq(
  $$ delete from storage.objects where bucket_id = 'attachments' and name = tests.attachment_object_path('spare.pdf')
     returning name $$,
  $$ values (tests.attachment_object_path('spare.pdf')) $$,
  'an owner still deletes a file through Storage (whose delete reads it back)');

/*
 * An outsider, and service_role
 */
select tests.storage_request('storage.object.get_authenticated', 'outsider');
select is_empty(
  $$ select pg_temp.found(pg_temp.files()) $$,
  'an outsider still finds nothing to download');

select tests.storage_request('storage.object.sign_many');
select set_eq(
  $$ select pg_temp.found(array[tests.attachment_object_path('manual.pdf')]) $$,
  $$ values (tests.attachment_object_path('manual.pdf')) $$,
  'Storage signs for service_role: the function''s hosted signer, after its own check');

/*
 * A member who leaves the team
 */
select tests.clear_authentication();
delete from public.accounts_memberships
where user_id = tests.user_id('member') and account_id = tests.account_id('team');

select tests.storage_request('storage.object.get_authenticated', 'member');
select is_empty(
  $$ select pg_temp.found(pg_temp.files()) $$,
  'a former member''s own JWT downloads nothing the moment they leave');
select tests.storage_request('storage.object.sign_many', 'member');
select is_empty(
  $$ select pg_temp.found(pg_temp.files()) $$,
  'and signs nothing');

/*
 * What is left
 */
select tests.clear_authentication();
select set_eq(
  $$ select name from storage.objects
     where bucket_id = 'attachments' and split_part(name, '/', 1) = tests.account_id('team')::text $$,
  $$ values (tests.attachment_object_path('manual.pdf')), (tests.attachment_object_path('pending.png')),
            (tests.attachment_object_path('later.png')) $$,
  'the bucket holds the uploaded file and the member''s two uploads; only the owner''s delete removed one');

select * from finish();
rollback;
