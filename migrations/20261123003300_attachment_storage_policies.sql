/*
 * Storage policies for the attachments bucket.
 *
 * A client talking to Supabase Storage directly (download, signed URL,
 * upload, remove) must get the same answer as it gets for the file's row in
 * public.message_attachments, so these policies look the row up by
 * object_path and ask the same questions as that table's policies:
 *
 *   - read (download, createSignedUrl, list): a row with that path exists
 *     and the caller can read its message (public.can_read_message);
 *   - upload: a row with that path exists and the caller is a member of
 *     the account that owns the message's ticket. Rows are registered
 *     first, with a server-generated path, so nothing can be uploaded to a
 *     name nobody registered, and the path's account segment is the row's
 *     real account (see kit.check_message_attachment_path);
 *   - delete: a row with that path exists and the caller holds
 *     tickets.delete on that account. Remove the file before its row: once
 *     the row is gone, only service_role can delete the file.
 *
 * There is no update policy, so nobody but service_role overwrites (upsert),
 * moves or renames a file: a new file is a new attachment. Nothing is
 * granted to anon here; other buckets are untouched, since each policy
 * starts with the bucket.
 *
 * Only policies are created: Supabase owns storage.objects and already has
 * RLS on, and creating policies on it is what Supabase supports. They run
 * as the caller (Storage sets the request's role and JWT claims), reading
 * public.message_attachments, messages and tickets under their own RLS.
 */

create policy "Attachment files are readable by readers of their message"
  on storage.objects
  for select
  to authenticated
  using (
    objects.bucket_id = 'attachments'
    and exists (
      select 1
      from public.message_attachments attachment
      where attachment.object_path = objects.name
        and public.can_read_message(attachment.message_id)
    )
  );

create policy "Attachment files can be uploaded by members once registered"
  on storage.objects
  for insert
  to authenticated
  with check (
    objects.bucket_id = 'attachments'
    and exists (
      select 1
      from public.message_attachments attachment
      join public.messages message on message.id = attachment.message_id
      where attachment.object_path = objects.name
        and public.has_role_on_ticket_account(message.ticket_id)
    )
  );

create policy "Attachment files are deletable by members with tickets.delete"
  on storage.objects
  for delete
  to authenticated
  using (
    objects.bucket_id = 'attachments'
    and exists (
      select 1
      from public.message_attachments attachment
      join public.messages message on message.id = attachment.message_id
      join public.tickets ticket on ticket.id = message.ticket_id
      where attachment.object_path = objects.name
        and public.has_permission((select auth.uid()), ticket.account_id, 'tickets.delete'::public.app_permissions)
    )
  );
