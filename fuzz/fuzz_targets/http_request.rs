#![no_main]
// What this target checks is documented on `edge_fuzz::http_request`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_fuzz::http_request(data));
