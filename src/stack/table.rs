//! The connection table: 4-tuple → connection slot. A hash map allocated at its full capacity
//! up front (it never grows), keyed with a per-process random key (ahash's `RandomState`), so
//! that a remote peer choosing addresses and ports cannot aim its connections at one bucket.

use core::net::SocketAddr;
use std::collections::HashMap;

/// A connection's key: the local address (one of the stack's) and port, and the remote's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourTuple {
    /// Our address and port.
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
}

/// 4-tuple → slot index, bounded.
#[derive(Debug)]
pub struct ConnTable {
    map: HashMap<FourTuple, u32, ahash::RandomState>,
    capacity: usize,
}

impl ConnTable {
    /// An empty table that holds at most `capacity` entries, allocated now.
    pub fn with_capacity(capacity: usize) -> ConnTable {
        ConnTable { map: HashMap::with_capacity_and_hasher(capacity, ahash::RandomState::new()), capacity }
    }

    /// The slot of the connection `key` names, if any.
    #[inline]
    pub fn get(&self, key: &FourTuple) -> Option<u32> {
        self.map.get(key).copied()
    }

    /// Whether `key` has an entry.
    #[inline]
    pub fn contains(&self, key: &FourTuple) -> bool {
        self.map.contains_key(key)
    }

    /// Insert; refused (false) at capacity, so the map never reallocates.
    pub fn insert(&mut self, key: FourTuple, slot: u32) -> bool {
        if self.map.len() >= self.capacity && !self.map.contains_key(&key) {
            return false;
        }
        self.map.insert(key, slot);
        true
    }

    /// Remove `key`'s entry, returning its slot.
    pub fn remove(&mut self, key: &FourTuple) -> Option<u32> {
        self.map.remove(key)
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&FourTuple, u32)> + '_ {
        self.map.iter().map(|(k, &v)| (k, v))
    }

    /// Entries in use.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the table has no entry.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    #[test]
    fn bounded_and_exact() {
        let mut t = ConnTable::with_capacity(2);
        let k = |p| FourTuple {
            local: SocketAddr::new(Ipv4Addr::new(198, 18, 0, 1).into(), p),
            remote: SocketAddr::new(Ipv4Addr::new(198, 18, 0, 2).into(), 80),
        };
        assert!(t.insert(k(1), 10));
        assert!(t.insert(k(2), 20));
        assert!(!t.insert(k(3), 30), "full");
        assert!(t.insert(k(2), 21), "replacing is not growing");
        assert_eq!(t.get(&k(2)), Some(21));
        assert_eq!(t.remove(&k(1)), Some(10));
        assert!(t.insert(k(3), 30));
        assert_eq!(t.len(), 2);
    }
}
