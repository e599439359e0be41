//! solar-water-heater plugin (to be written)
