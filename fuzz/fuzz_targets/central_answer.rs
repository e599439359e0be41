//! The central service's answers as the agent reads them (`status\nretry-after\nbody`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tend_fuzz::central_answer(data));
