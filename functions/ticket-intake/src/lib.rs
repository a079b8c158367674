//! Worker entry point for `ticket-intake`: glue only, the logic is in `edge-intake`.

edge_worker::fetch!(edge_intake::TicketIntake);
