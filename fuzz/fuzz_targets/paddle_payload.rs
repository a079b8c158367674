#![no_main]
// What this target checks is documented on `edge_fuzz::paddle_payload`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_fuzz::paddle_payload(data));
