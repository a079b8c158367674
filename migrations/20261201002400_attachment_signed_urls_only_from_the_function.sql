/*
 * Signed download URLs for attachment files come only from attachment-urls.
 *
 * Storage signs a download URL for whoever may read the object: POST
 * /object/sign/{bucket}/{path} and POST /object/sign/{bucket} look the
 * objects up under the caller's JWT (src/storage/object.ts,
 * signObjectUrl/signObjectUrls, a SELECT on storage.objects) and then sign
 * with any expiresIn the caller names. With the read policy as it was, a
 * member could mint a URL for a year, which keeps working after they leave
 * the team: a bearer link past the function's one-hour cap and past the
 * membership it was issued on.
 *
 * Storage names the API operation of every query it makes
 * (storage.operation(), set per transaction in
 * src/internal/database/postgres/scope.ts; names in
 * src/http/routes/operations.ts). The read policy now leaves out the two
 * signing operations, so for a member Storage finds no object there and
 * signs nothing ("Either the object does not exist or you do not have
 * access to it"). Everything else a reader does keeps working, each request
 * checked again under their JWT: downloading with it (GET
 * /object/authenticated/...), its info, listing, and the reads behind
 * uploads and deletes. The function's hosted signer signs as service_role,
 * which no policy limits, after it has checked the caller's access itself.
 *
 * Upload URLs are not limited here: Storage fixes their lifetime itself
 * (UPLOAD_SIGNED_URL_EXPIRATION_TIME) whoever asks, the upload policy only
 * lets a file's registrant ask, and what they can upload is bound to the
 * registered type and size (kit.check_attachment_object).
 */

drop policy "Attachment files are readable by readers of their message" on storage.objects;

create policy "Attachment files are readable, not signable, by their readers"
  on storage.objects
  for select
  to authenticated
  using (
    objects.bucket_id = 'attachments'
    and coalesce(storage.operation(), '') not in ('storage.object.sign', 'storage.object.sign_many')
    and exists (
      select 1
      from public.message_attachments attachment
      where attachment.object_path = objects.name
        and public.can_read_message(attachment.message_id)
    )
  );
