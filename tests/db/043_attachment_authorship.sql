-- Attachments go only on messages their adder wrote: a member attaches
-- files to their own support replies, never to the customer's message or a
-- colleague's reply, and only while a member; the file itself is uploaded
-- through Storage by whoever registered it. Trusted server code
-- (service_role) attaches anywhere.
begin;
create extension if not exists pgtap;
\ir _helpers.psql

do $$
begin
  perform tests.create_user('owner');
  perform tests.create_user('member');
  perform tests.create_user('colleague');
  perform tests.create_team_account('owner', 'team');
  perform tests.add_member(tests.account_id('team'), 'member', 'member');
  perform tests.add_member(tests.account_id('team'), 'colleague', 'member');

  -- The ticket comes with the customer's message.
  perform tests.create_ticket(tests.account_id('team'), 'Printer on fire');
  insert into public.messages (id, ticket_id, author, author_account_id, content)
  values
    ('00000000-0000-4000-8000-00000000a001', tests.ticket_id('Printer on fire'), 'support',
     tests.user_id('member'), 'The member''s reply'),
    ('00000000-0000-4000-8000-00000000a002', tests.ticket_id('Printer on fire'), 'support',
     tests.user_id('colleague'), 'The colleague''s reply'),
    ('00000000-0000-4000-8000-00000000a003', tests.ticket_id('Printer on fire'), 'support',
     tests.user_id('owner'), 'The owner''s reply');

  -- Registered, not uploaded yet.
  perform tests.create_attachment('00000000-0000-4000-8000-00000000a001', 'member.txt', 'member', false);
  perform tests.create_attachment('00000000-0000-4000-8000-00000000a002', 'colleague.txt', 'colleague', false);
end
$$;

-- The customer's message on the ticket.
create function pg_temp.customer_message()
returns uuid
language sql
stable
as $$
  select id from public.messages where ticket_id = tests.ticket_id('Printer on fire') and author = 'customer';
$$;

-- An attachment on the message as the current role would add it through
-- PostgREST (created_by left to its default, the caller).
create function pg_temp.attach(message_id uuid, file_name text)
returns void
language sql
as $$
  insert into public.message_attachments (message_id, object_path, file_name, content_type, size_bytes)
  values (
    attach.message_id,
    tests.attachment_path(tests.account_id('team'), attach.message_id, attach.file_name),
    attach.file_name,
    'text/plain',
    1
  );
$$;

select plan(22);

select policies_are('public', 'message_attachments',
  array['Attachments are viewable by those who can read their message',
        'Attachments can be added by the author of their message',
        'Attachments are deletable by members with tickets.delete'],
  'message_attachments has its read, insert and delete policies only');
select policy_cmd_is('storage', 'objects', 'Attachment files can be uploaded by whoever registered them', 'insert',
  'attachment files have an upload policy for whoever registered them');
select is_empty($$
  select policyname from pg_policies
  where schemaname = 'storage' and tablename = 'objects' and cmd = 'INSERT'
    and with_check like '%attachments%'
    and policyname <> 'Attachment files can be uploaded by whoever registered them'
$$, 'no other policy lets anyone upload into the attachments bucket');

/*
 * member
 */
select tests.authenticate_as('member');

select lives_ok(
  $$ select pg_temp.attach('00000000-0000-4000-8000-00000000a001', 'mine.txt') $$,
  'a member can attach a file to a reply they wrote');
select throws_ok(
  $$ select pg_temp.attach(pg_temp.customer_message(), 'from-the-customer.txt') $$,
  '42501', 'new row violates row-level security policy for table "message_attachments"',
  'a member cannot attach a file to the customer''s message');
select throws_ok(
  $$ select pg_temp.attach('00000000-0000-4000-8000-00000000a002', 'from-the-colleague.txt') $$,
  '42501', 'new row violates row-level security policy for table "message_attachments"',
  'a member cannot attach a file to a colleague''s reply');
select throws_ok(
  $$ select pg_temp.attach('00000000-0000-4000-8000-00000000a003', 'from-the-boss.txt') $$,
  '42501', 'new row violates row-level security policy for table "message_attachments"',
  'a member cannot attach a file to the owner''s reply');

select tests.storage_request('storage.object.upload', 'member');

select throws_ok(
  $$ insert into storage.objects (bucket_id, name, owner_id, metadata)
     values ('attachments', tests.attachment_object_path('colleague.txt'), tests.user_id('member')::text,
             '{"mimetype": "text/plain", "contentLength": 1}') $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'a member cannot upload the file a colleague registered on their reply');
select lives_ok(
  $$ insert into storage.objects (bucket_id, name, owner_id, metadata)
     values ('attachments', tests.attachment_object_path('member.txt'), tests.user_id('member')::text,
             '{"mimetype": "text/plain", "contentLength": 1}') $$,
  'a member can upload the file they registered');

/*
 * owner: holds every permission, and still only on their own replies
 */
select tests.authenticate_as('owner');

select throws_ok(
  $$ select pg_temp.attach('00000000-0000-4000-8000-00000000a001', 'owner-on-member.txt') $$,
  '42501', 'new row violates row-level security policy for table "message_attachments"',
  'an owner cannot attach a file to a member''s reply');
select throws_ok(
  $$ select pg_temp.attach(pg_temp.customer_message(), 'owner-on-customer.txt') $$,
  '42501', 'new row violates row-level security policy for table "message_attachments"',
  'an owner cannot attach a file to the customer''s message');
select lives_ok(
  $$ select pg_temp.attach('00000000-0000-4000-8000-00000000a003', 'owner.txt') $$,
  'an owner can attach a file to a reply they wrote');

select tests.storage_request('storage.object.upload', 'owner');

select throws_ok(
  $$ insert into storage.objects (bucket_id, name, owner_id)
     values ('attachments', tests.attachment_object_path('colleague.txt'), tests.user_id('owner')::text) $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'an owner cannot upload a file a member registered');

/*
 * service_role: trusted server code, the customer's files included
 */
select tests.authenticate_as_service_role();

select lives_ok(
  $$ select pg_temp.attach(pg_temp.customer_message(), 'customer.txt') $$,
  'service_role can attach a file to the customer''s message');
select lives_ok(
  $$ select pg_temp.attach('00000000-0000-4000-8000-00000000a002', 'server.txt') $$,
  'service_role can attach a file to any reply');

select tests.storage_request('storage.object.upload_signed');

select lives_ok(
  $$ insert into storage.objects (bucket_id, name, metadata)
     values ('attachments', tests.attachment_object_path('colleague.txt'), tests.storage_metadata('text/plain', 1)) $$,
  'the upload URL the function signed for the colleague works (Storage writes it as its superuser)');

/*
 * A member who leaves the team
 */
select tests.clear_authentication();

-- The member registered one more file, then left the team.
do $$
begin
  perform tests.create_attachment('00000000-0000-4000-8000-00000000a001', 'member-late.txt', 'member', false);
  delete from public.accounts_memberships
  where user_id = tests.user_id('member') and account_id = tests.account_id('team');
end
$$;

select tests.authenticate_as('member');

select throws_ok(
  $$ select pg_temp.attach('00000000-0000-4000-8000-00000000a001', 'after-leaving.txt') $$,
  '42501', 'new row violates row-level security policy for table "message_attachments"',
  'a former member cannot attach a file to a reply they wrote');

select tests.storage_request('storage.object.upload', 'member');

select throws_ok(
  $$ insert into storage.objects (bucket_id, name, owner_id)
     values ('attachments', tests.attachment_object_path('member-late.txt'), tests.user_id('member')::text) $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'nor upload a file they registered while a member');

/*
 * What the denied writes left behind
 */
select tests.clear_authentication();

select set_eq(
  $$ select a.file_name, m.author_account_id, a.created_by
     from public.message_attachments a join public.messages m on m.id = a.message_id
     where m.ticket_id = tests.ticket_id('Printer on fire') $$,
  $$ values ('member.txt', tests.user_id('member'), tests.user_id('member')),
            ('colleague.txt', tests.user_id('colleague'), tests.user_id('colleague')),
            ('mine.txt', tests.user_id('member'), tests.user_id('member')),
            ('owner.txt', tests.user_id('owner'), tests.user_id('owner')),
            ('customer.txt', null, null),
            ('server.txt', tests.user_id('colleague'), null),
            ('member-late.txt', tests.user_id('member'), tests.user_id('member')) $$,
  'every attachment a user added sits on a reply they wrote; the others came from service_role');
select set_eq(
  $$ select name from storage.objects
     where bucket_id = 'attachments' and split_part(name, '/', 1) = tests.account_id('team')::text $$,
  $$ values (tests.attachment_object_path('member.txt')), (tests.attachment_object_path('colleague.txt')) $$,
  'the bucket holds exactly the two uploads that were allowed');
select is(
  (select owner_id from storage.objects where name = tests.attachment_object_path('colleague.txt')),
  null,
  'the colleague''s file is the one the signed upload stored, not the owner''s or the member''s');
select is(
  (select owner_id from storage.objects where name = tests.attachment_object_path('member.txt')),
  tests.user_id('member')::text,
  'the member''s file is their own upload');

select * from finish();
rollback;
