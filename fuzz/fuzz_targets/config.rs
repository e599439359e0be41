//! Config and inventory parsing (`agent.toml text\n#--inventory--\nsite.toml text`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tend_fuzz::config(data));
