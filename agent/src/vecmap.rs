//! [`VecMap`]: a small map from names to values, kept as one sorted vector
//! (`litemap`).
//!
//! A device's per-code and per-plan state holds a handful of entries. A `BTreeMap`
//! allocates a node for eleven entries for the first one (about 1.4 KiB for an
//! inspection schedule), and a site holds ten thousand devices; a sorted vector holds
//! what is there. Lookups are binary searches; iteration is in key order, as with
//! `BTreeMap`, and so is the serde form (a map), so stored records read the same
//! either way.

/// A map kept as a vector sorted by key (see the module docs).
pub type VecMap<K, V> = litemap::LiteMap<K, V>;
