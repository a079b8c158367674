/*
 * Function: kit.check_attachment_object()
 *
 * AFTER INSERT OR UPDATE trigger on storage.objects, for the attachments
 * bucket: every object is a file some public.message_attachments row
 * registered, and is the file that row describes. Its name must be a
 * registered object_path; once Storage records the file's type and size in
 * metadata (`mimetype`, `size`), they must be the row's content_type (same
 * type/subtype, parameters aside) and size_bytes exactly.
 *
 * Why here: a Storage upload token binds only the path, not the type or
 * size (src/storage/object.ts, signUploadObjectUrl), so the client's PUT
 * decides the object's Content-Type; members reaching Storage with their own
 * JWT, copies and moves, and rows written straight into storage.objects
 * bypass the function altogether. Every one of these ends in a write of
 * this table, and Storage runs signed uploads as its superuser, past every
 * policy: only a trigger sees them all. Storage writes the object twice
 * (src/storage/uploader.ts): first a trial insert with the request's
 * `mimetype` (and `contentLength`), rolled back, before any byte is stored,
 * so a wrong type is refused before the upload; then, with the bytes
 * stored, the real row with `mimetype` and `size`, so a wrong size is
 * refused there and Storage deletes the bytes it wrote. `contentLength`
 * alone is not compared: for a multipart/form-data upload it is the whole
 * request's length, not the file's.
 *
 * It applies to everyone, service_role and Storage's superuser included:
 * the function only ever registers a file before it is uploaded, so a
 * trusted writer has no reason to store anything else here. An object left
 * behind after its row is deleted is untouched until someone rewrites it.
 *
 * The error is insufficient_privilege, which Storage answers as 403 with
 * this message (src/storage/database/errors.ts; other codes become a bare
 * 500). AFTER, so an upload the policies refuse gets the policy's error and
 * learns nothing about the row. Security definer because the row must be
 * found whatever role Storage runs as (its superuser may have no grant on
 * public), and only the one row at exactly this name is read.
 */
create or replace function kit.check_attachment_object()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  attachment record;
  stored_type text;
begin
  select a.content_type, a.size_bytes
  into attachment
  from public.message_attachments a
  where a.object_path = new.name;

  if not found then
    raise exception 'no attachment is registered at this path in the attachments bucket'
      using errcode = 'insufficient_privilege',
            hint = 'Register the file with POST /attachments/upload-url first.';
  end if;

  if new.metadata is null then
    return null;
  end if;
  if jsonb_typeof(new.metadata) <> 'object' then
    raise exception 'an attachment file''s metadata must be a JSON object'
      using errcode = 'insufficient_privilege';
  end if;

  stored_type := new.metadata ->> 'mimetype';
  if stored_type is not null
     and lower(btrim(split_part(stored_type, ';', 1))) <> lower(btrim(split_part(attachment.content_type, ';', 1))) then
    raise exception 'the file''s type does not match its attachment'
      using errcode = 'insufficient_privilege',
            detail = format('The file is %s; its attachment was registered as %s.', stored_type, attachment.content_type);
  end if;

  -- Storage records both once the bytes are stored; a size without a type
  -- would be a file of unknown type.
  if new.metadata ? 'size' and stored_type is null then
    raise exception 'an attachment file''s metadata must name its type along with its size'
      using errcode = 'insufficient_privilege';
  end if;

  if new.metadata ? 'size' and new.metadata ->> 'size' is distinct from attachment.size_bytes::text then
    raise exception 'the file''s size does not match its attachment'
      using errcode = 'insufficient_privilege',
            detail = format('The file is %s bytes; its attachment was registered as %s bytes.', new.metadata ->> 'size', attachment.size_bytes);
  end if;

  return null;
end;
$$;

comment on function kit.check_attachment_object() is 'AFTER INSERT OR UPDATE trigger on storage.objects: an object in the attachments bucket must be registered in message_attachments, with the type and size its row says.';

revoke all on function kit.check_attachment_object() from public, anon, authenticated, service_role;

-- Only writes that can change what the object is: a new object, or a new
-- name, bucket or metadata (Storage's upsert rewrites metadata).
create trigger check_attachment_object_on_insert
  after insert on storage.objects
  for each row
  when (new.bucket_id = 'attachments')
  execute function kit.check_attachment_object();

create trigger check_attachment_object_on_update
  after update on storage.objects
  for each row
  when (new.bucket_id = 'attachments'
        and (old.bucket_id, old.name, old.metadata) is distinct from (new.bucket_id, new.name, new.metadata))
  execute function kit.check_attachment_object();
