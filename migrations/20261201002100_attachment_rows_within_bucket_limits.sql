/*
 * Function: kit.check_message_attachment_against_bucket()
 *
 * AFTER INSERT OR UPDATE trigger on public.message_attachments: a row may
 * only register a file the attachments bucket would take, by the bucket's
 * own columns and with Storage's own rule (src/storage/uploader.ts,
 * validateMimeType): content_type is one of allowed_mime_types exactly, or
 * has the type of an entry whose subtype is `*`; size_bytes is at most
 * file_size_limit. A null limit, or an empty list, allows anything, as in
 * Storage. So neither a member inserting through PostgREST nor the function
 * configured wider than the bucket can register an SVG, a 40 MiB file, or
 * `image/png; x=...`: the store says no whichever way the row comes.
 *
 * AFTER, like kit.check_message_attachment_path, so RLS and the table's own
 * checks answer first. Security definer because storage.buckets has RLS on
 * and no policy lets members read it; the function reads that one bucket's
 * limits, nothing about the caller. A missing bucket refuses every row:
 * there would be nowhere to put the file, and no limits to apply.
 */
create or replace function kit.check_message_attachment_against_bucket()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  bucket record;
begin
  select b.file_size_limit, b.allowed_mime_types
  into bucket
  from storage.buckets b
  where b.id = 'attachments';

  if not found then
    raise exception 'the attachments bucket does not exist'
      using errcode = 'check_violation',
            constraint = 'message_attachments_within_bucket_limits',
            table = 'message_attachments',
            schema = 'public';
  end if;

  if bucket.file_size_limit is not null and new.size_bytes > bucket.file_size_limit then
    raise exception 'an attachment cannot be larger than the attachments bucket takes'
      using errcode = 'check_violation',
            detail = format('size_bytes is %s; the bucket takes at most %s.', new.size_bytes, bucket.file_size_limit),
            constraint = 'message_attachments_within_bucket_limits',
            table = 'message_attachments',
            schema = 'public';
  end if;

  if cardinality(bucket.allowed_mime_types) > 0
     and not exists (
       select 1
       from unnest(bucket.allowed_mime_types) allowed
       where allowed = new.content_type
          or (split_part(allowed, '/', 2) = '*'
              and split_part(allowed, '/', 1) = split_part(new.content_type, '/', 1))
     ) then
    raise exception 'an attachment''s content type must be one the attachments bucket takes'
      using errcode = 'check_violation',
            detail = format('content_type is %s; the bucket takes %s.', new.content_type, array_to_string(bucket.allowed_mime_types, ', ')),
            constraint = 'message_attachments_within_bucket_limits',
            table = 'message_attachments',
            schema = 'public';
  end if;

  return null;
end;
$$;

comment on function kit.check_message_attachment_against_bucket() is 'AFTER INSERT OR UPDATE trigger on message_attachments: content_type and size_bytes must be within the attachments bucket''s allowed_mime_types and file_size_limit.';

revoke all on function kit.check_message_attachment_against_bucket() from public, anon, authenticated, service_role;

create trigger check_message_attachment_against_bucket
  after insert or update of content_type, size_bytes on public.message_attachments
  for each row execute function kit.check_message_attachment_against_bucket();
