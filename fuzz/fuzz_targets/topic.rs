//! MQTT topic templates and topics (`template\nsite\ndevice\ntopic`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tend_fuzz::topic(data));
