/*
 * The attachments bucket refuses what attachment-urls refuses.
 *
 * The bucket was created taking any type up to 50 MiB, while the function
 * only signs uploads of its allowed types up to ATTACHMENT_MAX_BYTES. A
 * client that reaches Storage another way (its own JWT, an upload token
 * whose PUT carries another type) met only the wider limit. These are the
 * function's defaults: 10 MiB, and PNG, JPEG, GIF, WebP, PDF and plain text.
 *
 * Storage enforces both on every upload into the bucket, standard, signed,
 * resumable or S3 (src/storage/uploader.ts): the size before and while the
 * bytes stream in, the Content-Type with validateMimeType (the exact
 * type/subtype, or any subtype where the list says `*`). The table
 * message_attachments checks its rows against the same two columns (next
 * migration), so this row is the one place the store's limits live. An
 * operator who widens ATTACHMENT_CONTENT_TYPES or ATTACHMENT_MAX_BYTES
 * widens this row too; one who narrows them may leave it as it is.
 *
 * An update rather than the first migration's insert: that one kept a
 * bucket that already existed as it was, so this is what brings such a
 * bucket to the limits too.
 */
update storage.buckets
set file_size_limit = 10485760,
    allowed_mime_types = array['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'application/pdf', 'text/plain']
where id = 'attachments';
