//! Payload decoding and rules of the solar_water_heater plugin, natively: trace lines in, the
//! plugin contract checked on every outcome.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tend_fuzz::plugin_messages::<tend_plugin_solar_water_heater::SolarWaterHeater>(data);
});
