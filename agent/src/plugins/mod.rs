//! plugins (being written)
