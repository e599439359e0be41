//! door-controller plugin (to be written)
