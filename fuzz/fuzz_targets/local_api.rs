//! The local API's request admission and completion body (`method\nheaders\n\nbody`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tend_fuzz::local_api(data));
