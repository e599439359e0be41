//! alarms (being written)
