//! Worker entry point for `billing-webhook`: glue only, the logic is in `edge-billing`.

edge_worker::fetch!(edge_billing::BillingWebhooks);
