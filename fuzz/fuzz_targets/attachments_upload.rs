#![no_main]
// What this target checks is documented on `edge_fuzz::attachments_upload`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_fuzz::attachments_upload(data));
