//! central (being written)
