//! tend
