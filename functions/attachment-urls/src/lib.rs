//! Worker entry point for `attachment-urls`: glue only, the logic is in `edge-attachments`.

edge_worker::fetch!(edge_attachments::AttachmentUrls);
