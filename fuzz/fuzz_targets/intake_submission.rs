#![no_main]
// What this target checks is documented on `edge_fuzz::intake_submission`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_fuzz::intake_submission(data));
