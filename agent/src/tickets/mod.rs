//! tickets (being written)
