/*
 * Storage bucket: attachments.
 *
 * Files attached to ticket messages. The bucket is private: Storage serves
 * nothing from it without a token or a signed URL, and who may read, upload
 * or delete which file is decided by the policies on storage.objects (a
 * later migration), from the public.message_attachments row that registers
 * the file. Supabase Storage enforces file_size_limit before it writes
 * anything; it matches the size_bytes check on message_attachments (50 MiB,
 * also the Free plan's global cap). allowed_mime_types stays null: support
 * conversations carry logs, screenshots, PDFs and archives alike, and a
 * private bucket served through signed URLs gives a hostile type no page of
 * ours to run in.
 *
 * Inserting the row is how Supabase's own docs create a bucket in SQL; on
 * conflict keeps a bucket someone already made (e.g. from the dashboard)
 * as it is.
 */
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('attachments', 'attachments', false, 52428800, null)
on conflict (id) do nothing;
