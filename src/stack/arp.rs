//! The neighbour cache for IPv4 over Ethernet (RFC 826; RFC 1122 §2.3.2.1 on flooding and
//! expiry): bounded, with expiry and refresh, and a bounded queue of frames waiting for a
//! resolution.

use crate::io::Frame;
use crate::time::{Duration, Instant};
use crate::wire::MacAddr;
use core::net::Ipv4Addr;
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy)]
struct Entry {
    ip: Ipv4Addr,
    mac: MacAddr,
    expires: Instant,
}

/// A frame built but waiting for the next hop's MAC address.
#[derive(Debug)]
pub(crate) struct Pending {
    pub next_hop: Ipv4Addr,
    pub frame: Frame,
    pub since: Instant,
}

/// Neighbour cache plus the queue of frames waiting on it.
#[derive(Debug)]
pub(crate) struct ArpCache {
    entries: Vec<Entry>,
    capacity: usize,
    ttl: Duration,
    pub pending: VecDeque<Pending>,
    pending_capacity: usize,
    /// Last request sent per address being resolved (RFC 1122 §2.3.2.1: at most one per
    /// second per destination).
    requested: Vec<(Ipv4Addr, Instant)>,
}

impl ArpCache {
    pub fn new(capacity: usize, ttl: Duration, pending_capacity: usize) -> ArpCache {
        ArpCache {
            entries: Vec::with_capacity(capacity),
            capacity,
            ttl,
            pending: VecDeque::with_capacity(pending_capacity),
            pending_capacity,
            requested: Vec::with_capacity(pending_capacity),
        }
    }

    pub fn lookup(&self, ip: Ipv4Addr, now: Instant) -> Option<MacAddr> {
        self.entries.iter().find(|e| e.ip == ip && e.expires > now).map(|e| e.mac)
    }

    /// Learn or refresh a mapping. When full, the entry closest to expiry makes room.
    pub fn insert(&mut self, ip: Ipv4Addr, mac: MacAddr, now: Instant) {
        let expires = now + self.ttl;
        if let Some(e) = self.entries.iter_mut().find(|e| e.ip == ip) {
            e.mac = mac;
            e.expires = expires;
            return;
        }
        if self.entries.len() >= self.capacity {
            let Some(oldest) = self.entries.iter().enumerate().min_by_key(|(_, e)| e.expires).map(|(i, _)| i) else {
                return; // capacity 0
            };
            self.entries.swap_remove(oldest);
        }
        self.entries.push(Entry { ip, mac, expires });
        self.requested.retain(|(r, _)| *r != ip);
    }

    /// Only refresh a mapping we already have (RFC 826 "merge" for requests not for us).
    pub fn refresh(&mut self, ip: Ipv4Addr, mac: MacAddr, now: Instant) {
        if self.entries.iter().any(|e| e.ip == ip) {
            self.insert(ip, mac, now);
        }
    }

    /// Whether a request for `ip` should go out now (none sent in the last second).
    pub fn should_request(&mut self, ip: Ipv4Addr, now: Instant) -> bool {
        match self.requested.iter_mut().find(|(r, _)| *r == ip) {
            Some((_, at)) if now.saturating_duration_since(*at) < Duration::from_secs(1) => false,
            Some((_, at)) => {
                *at = now;
                true
            }
            None => {
                if self.requested.len() >= self.pending_capacity.max(1) {
                    self.requested.remove(0);
                }
                self.requested.push((ip, now));
                true
            }
        }
    }

    /// Queue a frame for `next_hop`; gives it back if the queue is full.
    pub fn enqueue(&mut self, next_hop: Ipv4Addr, frame: Frame, now: Instant) -> Result<(), Frame> {
        if self.pending.len() >= self.pending_capacity {
            return Err(frame);
        }
        self.pending.push_back(Pending { next_hop, frame, since: now });
        Ok(())
    }

    /// Addresses with frames waiting, to ask again for.
    pub fn pending_hops(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.pending.iter().map(|p| p.next_hop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const C: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);

    #[test]
    fn insert_lookup_expire_and_bound() {
        let mut c = ArpCache::new(2, Duration::from_secs(60), 4);
        let m = MacAddr([2, 0, 0, 0, 0, 1]);
        c.insert(A, m, Instant::ZERO);
        assert_eq!(c.lookup(A, Instant::from_secs(59)), Some(m));
        assert_eq!(c.lookup(A, Instant::from_secs(60)), None, "expired");
        c.insert(A, m, Instant::from_secs(10)); // refresh
        c.insert(B, m, Instant::from_secs(20));
        c.insert(C, m, Instant::from_secs(30)); // evicts A, the closest to expiry
        assert_eq!(c.lookup(A, Instant::from_secs(31)), None);
        assert!(c.lookup(B, Instant::from_secs(31)).is_some());
        assert!(c.lookup(C, Instant::from_secs(31)).is_some());
    }

    #[test]
    fn requests_are_rate_limited_per_address() {
        let mut c = ArpCache::new(2, Duration::from_secs(60), 4);
        assert!(c.should_request(A, Instant::ZERO));
        assert!(!c.should_request(A, Instant::from_millis(999)));
        assert!(c.should_request(B, Instant::from_millis(999)));
        assert!(c.should_request(A, Instant::from_millis(1000)));
    }

    #[test]
    fn pending_queue_is_bounded() {
        let mut c = ArpCache::new(2, Duration::from_secs(60), 1);
        assert!(c.enqueue(A, Frame { index: 1, offset: 0, len: 0 }, Instant::ZERO).is_ok());
        assert!(c.enqueue(A, Frame { index: 2, offset: 0, len: 0 }, Instant::ZERO).is_err());
    }
}
