#![no_main]
// What this target checks is documented on `edge_fuzz::webhook_signature`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_fuzz::webhook_signature(data));
