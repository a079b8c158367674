/*
 * Attachments go only on messages their adder wrote.
 *
 * Until now any member of the ticket's account could attach a file to any
 * message on it: to the customer's question (so a file appeared to come
 * from the customer) and to a colleague's reply (so it appeared to come
 * from them). A file is part of what its message says, and a message is a
 * record nobody edits (see the messages migration), so only its author adds
 * to it: a member attaches files to the support replies they wrote, while
 * still a member of the ticket's account. Files on customer messages come
 * in through trusted server code (service_role), as the messages do.
 *
 * The file follows its row: uploading it through Storage with one's own JWT
 * is for whoever registered it, not for any member, so a colleague cannot
 * put their own bytes under someone else's attachment before its author
 * uploads. (The function signs uploads with the service key, past these
 * policies, and registers the row in the caller's name first.)
 */

drop policy "Attachments can be added by members in their own name" on public.message_attachments;

-- author_account_id is the writer's personal account, whose id is their
-- user id (see the messages migration).
create policy "Attachments can be added by the author of their message"
  on public.message_attachments
  for insert
  to authenticated
  with check (
    created_by = (select auth.uid())
    and exists (
      select 1
      from public.messages message
      where message.id = message_attachments.message_id
        and message.author = 'support'::public.message_author
        and message.author_account_id = (select auth.uid())
        and public.has_role_on_ticket_account(message.ticket_id)
    )
  );

drop policy "Attachment files can be uploaded by members once registered" on storage.objects;

create policy "Attachment files can be uploaded by whoever registered them"
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
        and attachment.created_by = (select auth.uid())
        and public.has_role_on_ticket_account(message.ticket_id)
    )
  );
