//! Payload decoding and rules of the door_controller plugin, natively: trace lines in, the
//! plugin contract checked on every outcome.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tend_fuzz::plugin_messages::<tend_plugin_door_controller::DoorController>(data);
});
