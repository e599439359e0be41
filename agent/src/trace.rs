//! trace (being written)
