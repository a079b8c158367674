#![no_main]
// What this target checks is documented on `edge_fuzz::lemon_squeezy_payload`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_fuzz::lemon_squeezy_payload(data));
