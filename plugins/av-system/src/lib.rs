//! av-system plugin (to be written)
