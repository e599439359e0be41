//! `tend demo`.
