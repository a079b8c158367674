-- The store refuses what attachment-urls refuses, whichever way a file
-- comes: the bucket's limits are the function's defaults; a
-- message_attachments row must be within them, whoever inserts it; and an
-- object in the bucket must be a registered file with the type and size its
-- row says, for every write Storage makes (a member's own upload, the
-- superuser's signed upload, the final upsert, a move) and for rows written
-- into storage.objects directly.
begin;
create extension if not exists pgtap;
\ir _helpers.psql

do $$
begin
  perform tests.create_user('owner');
  perform tests.create_user('member');
  perform tests.create_team_account('owner', 'team');
  perform tests.add_member(tests.account_id('team'), 'member', 'member');

  perform tests.create_ticket(tests.account_id('team'), 'Printer on fire');
  insert into public.messages (id, ticket_id, author, author_account_id, content)
  values ('00000000-0000-4000-8000-00000000a001', tests.ticket_id('Printer on fire'), 'support',
          tests.user_id('member'), 'Invoice and notes attached');

  -- Registered by the member, not uploaded yet.
  perform tests.create_attachment('00000000-0000-4000-8000-00000000a001', 'invoice.png', 'member', false, 'image/png', 2048);
  perform tests.create_attachment('00000000-0000-4000-8000-00000000a001', 'notes.txt', 'member', false, 'text/plain', 13);
  perform tests.create_attachment('00000000-0000-4000-8000-00000000a001', 'photo.png', 'member', false, 'image/png', 13);
  insert into storage.buckets (id, name, public) values ('other-bucket', 'other-bucket', false);
end
$$;

-- A row for the member's message as the member would insert it through
-- PostgREST, at a fresh path.
create function pg_temp.register(content_type text, size_bytes bigint)
returns void
language sql
as $$
  insert into public.message_attachments (message_id, object_path, file_name, content_type, size_bytes)
  values (
    '00000000-0000-4000-8000-00000000a001',
    tests.attachment_path(tests.account_id('team'), '00000000-0000-4000-8000-00000000a001', md5(random()::text) || '.bin'),
    'file',
    register.content_type,
    register.size_bytes
  );
$$;

select plan(46);

/*
 * Structure
 */
select results_eq(
  $$ select file_size_limit, allowed_mime_types from storage.buckets where id = 'attachments' $$,
  $$ values (10485760::bigint,
             array['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'application/pdf', 'text/plain']) $$,
  'the attachments bucket takes what attachment-urls takes by default: 10 MiB of PNG, JPEG, GIF, WebP, PDF or plain text');
select trigger_is('public', 'message_attachments', 'check_message_attachment_against_bucket',
  'kit', 'check_message_attachment_against_bucket',
  'attachment rows are checked against the bucket''s limits by kit.check_message_attachment_against_bucket');
select trigger_is('storage', 'objects', 'check_attachment_object_on_insert', 'kit', 'check_attachment_object',
  'new objects are checked against their attachment by kit.check_attachment_object');
select trigger_is('storage', 'objects', 'check_attachment_object_on_update', 'kit', 'check_attachment_object',
  'rewritten objects are checked against their attachment by kit.check_attachment_object');
select is_definer('kit', 'check_message_attachment_against_bucket', array[]::text[],
  'the row check runs as its owner, so it can read the bucket, which members cannot');
select is_definer('kit', 'check_attachment_object', array[]::text[],
  'the object check runs as its owner, so it finds the row whatever role Storage writes as');

/*
 * Rows: a member inserting through PostgREST, past the function
 */
select tests.authenticate_as('member');

select throws_ok(
  $$ insert into public.message_attachments (message_id, object_path, file_name, content_type, size_bytes)
     values ('00000000-0000-4000-8000-00000000a001',
             tests.attachment_path(tests.account_id('team'), '00000000-0000-4000-8000-00000000a001', 'invoice2.png'),
             'invoice.png', 'image/svg+xml', 2048) $$,
  '23514', 'an attachment''s content type must be one the attachments bucket takes',
  'a member cannot register an SVG, even named invoice.png');
select throws_ok(
  $$ select pg_temp.register('text/html', 10) $$,
  '23514', 'an attachment''s content type must be one the attachments bucket takes',
  'a member cannot register an HTML file');
select throws_ok(
  $$ select pg_temp.register('application/octet-stream', 10) $$,
  '23514', 'an attachment''s content type must be one the attachments bucket takes',
  'a member cannot register a file of unnamed type');
select throws_ok(
  $$ select pg_temp.register('image/png; x=y', 10) $$,
  '23514', 'an attachment''s content type must be one the attachments bucket takes',
  'an allowed type with parameters is not that type, as Storage compares them');
select throws_ok(
  $$ select pg_temp.register('IMAGE/PNG', 10) $$,
  '23514', 'an attachment''s content type must be one the attachments bucket takes',
  'types compare exactly, as Storage compares them (the function sends them lower-case)');
select throws_ok(
  $$ select pg_temp.register('image/png', 10485761) $$,
  '23514', 'an attachment cannot be larger than the attachments bucket takes',
  'a member cannot register a file one byte over the bucket''s limit');
select throws_ok(
  $$ select pg_temp.register('application/pdf', 41943040) $$,
  '23514', 'an attachment cannot be larger than the attachments bucket takes',
  'a member cannot register 40 MiB, below the table''s own 50 MiB bound');
select lives_ok(
  $$ select pg_temp.register('image/png', 10485760) $$,
  'a member can register a PNG of exactly the bucket''s limit');
select lives_ok(
  $$ select pg_temp.register('text/plain', 1) $$,
  'a member can register a byte of plain text');

/*
 * Rows: service_role is held to the bucket too
 */
select tests.authenticate_as_service_role();

select throws_ok(
  $$ select pg_temp.register('image/svg+xml', 2048) $$,
  '23514', 'an attachment''s content type must be one the attachments bucket takes',
  'service_role cannot register an SVG either');
select throws_ok(
  $$ update public.message_attachments set content_type = 'image/svg+xml' where id = tests.attachment_id('invoice.png') $$,
  '23514', 'an attachment''s content type must be one the attachments bucket takes',
  'service_role cannot change a row to a type the bucket refuses');
select throws_ok(
  $$ update public.message_attachments set size_bytes = 10485761 where id = tests.attachment_id('invoice.png') $$,
  '23514', 'an attachment cannot be larger than the attachments bucket takes',
  'service_role cannot grow a row past the bucket''s limit');

/*
 * Rows: the bucket row is the one place the limits live
 */
select tests.clear_authentication();

update storage.buckets set allowed_mime_types = '{image/*}', file_size_limit = null where id = 'attachments';
select lives_ok(
  $$ select pg_temp.register('image/svg+xml', 52428800) $$,
  'a bucket opened to image/* and any size takes an SVG of 50 MiB');
select throws_ok(
  $$ select pg_temp.register('text/plain', 1) $$,
  '23514', 'an attachment''s content type must be one the attachments bucket takes',
  'image/* takes no other type');
update storage.buckets set allowed_mime_types = null where id = 'attachments';
select lives_ok(
  $$ select pg_temp.register('application/x-msdownload', 1) $$,
  'a bucket without allowed types takes any type, as Storage does');
-- Renaming the bucket needs it empty: clear out what dev/seed.sql may have
-- put there (the test's rollback brings it back), saying we are Storage,
-- since it refuses direct deletes otherwise.
set local storage.allow_delete_query = 'true';
delete from storage.objects where bucket_id = 'attachments';
update storage.buckets set id = 'attachments-renamed' where id = 'attachments';
select throws_ok(
  $$ select pg_temp.register('text/plain', 1) $$,
  '23514', 'the attachments bucket does not exist',
  'without the bucket no attachment can be registered');
update storage.buckets set id = 'attachments' where id = 'attachments-renamed';
update storage.buckets
set file_size_limit = 10485760,
    allowed_mime_types = array['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'application/pdf', 'text/plain']
where id = 'attachments';

/*
 * Objects: a member uploading with their own JWT (POST /object/attachments/...)
 *
 * Storage first tries the insert as the caller, with the request's type and
 * length, before it stores a byte (Uploader.canUpload).
 */
select tests.storage_request('storage.object.upload', 'member');

select throws_ok(
  $$ insert into storage.objects (bucket_id, name, owner_id, metadata)
     values ('attachments', tests.attachment_object_path('invoice.png'), tests.user_id('member')::text,
             '{"mimetype": "image/svg+xml", "contentLength": 2048}') $$,
  '42501', 'the file''s type does not match its attachment',
  'a member cannot upload an SVG where invoice.png was registered');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name, owner_id, metadata)
     values ('attachments', tests.attachment_object_path('invoice.png'), tests.user_id('member')::text,
             tests.storage_metadata('image/svg+xml', 2048)) $$,
  '42501', 'the file''s type does not match its attachment',
  'nor write the object row straight into storage.objects with the SVG''s metadata');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name, owner_id, metadata)
     values ('attachments', tests.attachment_object_path('invoice.png'), tests.user_id('member')::text,
             tests.storage_metadata('image/png', 40000000)) $$,
  '42501', 'the file''s size does not match its attachment',
  'nor one of another size than registered');
select lives_ok(
  $$ insert into storage.objects (bucket_id, name, owner_id, metadata)
     values ('attachments', tests.attachment_object_path('invoice.png'), tests.user_id('member')::text,
             '{"mimetype": "image/png", "contentLength": 2048}') $$,
  'a member can start the upload of the PNG that was registered');

/*
 * Objects: an upload through a signed upload URL (PUT /object/upload/sign/...)
 *
 * Storage checks the token, then writes as its superuser, past every
 * policy: the trial insert, the bytes, then the upsert with what was stored.
 */
select tests.storage_request('storage.object.upload_signed');

select throws_ok(
  $$ insert into storage.objects (bucket_id, name, metadata)
     values ('attachments', tests.attachment_object_path('notes.txt'), '{"mimetype": "text/html", "contentLength": 13}') $$,
  '42501', 'the file''s type does not match its attachment',
  'a signed upload whose PUT says text/html is refused before a byte is stored');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name, metadata)
     values ('attachments', tests.attachment_object_path('notes.txt'), tests.storage_metadata('text/plain', 14))
     on conflict (name, bucket_id) do update set metadata = excluded.metadata $$,
  '42501', 'the file''s size does not match its attachment',
  'a signed upload of another size than registered is refused when Storage records it');
select lives_ok(
  $$ insert into storage.objects (bucket_id, name, metadata)
     values ('attachments', tests.attachment_object_path('notes.txt'), '{}') $$,
  'a trial insert that names no type (Storage signing an upload URL without a Content-Type) passes: the upload is checked');
select lives_ok(
  $$ insert into storage.objects (bucket_id, name, metadata)
     values ('attachments', tests.attachment_object_path('notes.txt'), tests.storage_metadata('text/plain;charset=UTF-8', 13))
     on conflict (name, bucket_id) do update set metadata = excluded.metadata $$,
  'the registered type and size are recorded (parameters such as a charset aside)');
select throws_ok(
  $$ update storage.objects set metadata = tests.storage_metadata('text/html', 13)
     where name = tests.attachment_object_path('notes.txt') $$,
  '42501', 'the file''s type does not match its attachment',
  'an upload cannot overwrite a file with another type (upsert)');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name, metadata)
     values ('attachments', tests.attachment_object_path('photo.png'), '{"size": 13}') $$,
  '42501', 'an attachment file''s metadata must name its type along with its size',
  'a stored file must say its type');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name, metadata)
     values ('attachments', tests.attachment_object_path('photo.png'), '"image/png"') $$,
  '42501', 'an attachment file''s metadata must be a JSON object',
  'metadata that is not an object is refused');

/*
 * Objects: moves, copies and what nobody registered
 */
select throws_ok(
  $$ update storage.objects set name = tests.attachment_object_path('photo.png')
     where name = tests.attachment_object_path('notes.txt') $$,
  '42501', 'the file''s type does not match its attachment',
  'a text file cannot be moved onto the path registered for a PNG of the same size');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name, metadata)
     values ('attachments', tests.attachment_object_path('photo.png'), tests.storage_metadata('text/plain', 13)) $$,
  '42501', 'the file''s type does not match its attachment',
  'nor copied there');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name, metadata)
     values ('attachments', tests.attachment_path(tests.account_id('team'), '00000000-0000-4000-8000-00000000a001', 'stray.txt'),
             tests.storage_metadata('text/plain', 5)) $$,
  '42501', 'no attachment is registered at this path in the attachments bucket',
  'nothing is stored in the bucket at a path no attachment registered, even by the superuser');
select throws_ok(
  $$ update storage.objects set bucket_id = 'attachments', name = tests.attachment_path(tests.account_id('team'), '00000000-0000-4000-8000-00000000a001', 'stray.txt')
     where name = tests.attachment_object_path('notes.txt') $$,
  '42501', 'no attachment is registered at this path in the attachments bucket',
  'nor moved to one');
select lives_ok(
  $$ insert into storage.objects (bucket_id, name, metadata)
     values ('other-bucket', tests.attachment_object_path('photo.png'), tests.storage_metadata('image/svg+xml', 99)) $$,
  'other buckets are untouched by the attachment checks');
select throws_ok(
  $$ update storage.objects set bucket_id = 'attachments'
     where bucket_id = 'other-bucket' and name = tests.attachment_object_path('photo.png') $$,
  '42501', 'the file''s type does not match its attachment',
  'a file from another bucket cannot be moved in under a registered path of another type');

/*
 * Objects: service_role as trusted server code is held to the same
 */
select tests.authenticate_as_service_role();

select throws_ok(
  $$ insert into storage.objects (bucket_id, name, metadata)
     values ('attachments', tests.attachment_object_path('photo.png'), tests.storage_metadata('image/png', 14)) $$,
  '42501', 'the file''s size does not match its attachment',
  'service_role cannot store a file of another size than registered');
select lives_ok(
  $$ insert into storage.objects (bucket_id, name, metadata)
     values ('attachments', tests.attachment_object_path('photo.png'), tests.storage_metadata('image/png', 13)) $$,
  'service_role can store the registered file');
select lives_ok(
  $$ update storage.objects set last_accessed_at = now() where name = tests.attachment_object_path('photo.png') $$,
  'writes that leave the name, bucket and metadata alone are not checked again');

/*
 * What the refused writes left behind
 */
select tests.clear_authentication();

select set_eq(
  $$ select name, metadata ->> 'mimetype' as mimetype, metadata ->> 'size' as size
     from storage.objects
     where bucket_id = 'attachments' and split_part(name, '/', 1) = tests.account_id('team')::text $$,
  $$ values (tests.attachment_object_path('invoice.png'), 'image/png', null),
            (tests.attachment_object_path('notes.txt'), 'text/plain;charset=UTF-8', '13'),
            (tests.attachment_object_path('photo.png'), 'image/png', '13') $$,
  'the bucket holds exactly the objects that match their rows');
select is(
  (select count(*)::integer from public.message_attachments
   where message_id = '00000000-0000-4000-8000-00000000a001'
     and content_type not in ('image/png', 'image/jpeg', 'image/gif', 'image/webp', 'application/pdf', 'text/plain')),
  2,
  'the only rows of other types are the two registered while the bucket was opened wider');
select is(
  (select count(*)::integer from public.message_attachments
   where message_id = '00000000-0000-4000-8000-00000000a001' and size_bytes > 10485760),
  1,
  'the only row over 10 MiB is the one registered while the bucket had no size limit');
select is(
  (select content_type from public.message_attachments where id = tests.attachment_id('invoice.png')),
  'image/png',
  'the refused update left invoice.png a PNG');

select * from finish();
rollback;
