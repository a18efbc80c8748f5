//! The neighbour cache, one for both families: IPv4 over Ethernet (RFC 826; RFC 1122
//! §2.3.2.1 on flooding and expiry) and IPv6 neighbour discovery (RFC 4861 §7.3: learned from
//! solicitations and advertisements). Bounded, with expiry and refresh, and a bounded queue of
//! frames waiting for a resolution. What is left of RFC 4861's reachability states: an entry
//! is REACHABLE until it expires, and a new solicitation starts from INCOMPLETE.

use crate::io::Frame;
use crate::time::{Duration, Instant};
use crate::wire::MacAddr;
use core::net::IpAddr;
use std::collections::{HashMap, VecDeque};

#[derive(Debug, Clone, Copy)]
struct Entry {
    mac: MacAddr,
    expires: Instant,
    /// Sent to at least once (looked up for a frame going out): a neighbour we talk to,
    /// kept over ones that only announced themselves when the cache is full.
    used: Option<Instant>,
}

/// A frame built but waiting for the next hop's MAC address.
#[derive(Debug)]
pub(crate) struct Pending {
    pub next_hop: IpAddr,
    pub frame: Frame,
    pub since: Instant,
}

/// Neighbour cache plus the queue of frames waiting on it.
#[derive(Debug)]
pub(crate) struct ArpCache {
    entries: HashMap<IpAddr, Entry, ahash::RandomState>,
    /// Entries never sent to, oldest first (some may since have been used or gone): the
    /// first to make room, in O(1), so a flood of requests from invented neighbours (RFC 826
    /// has us learn every sender that asks for us) only ever evicts its own kind.
    unused: VecDeque<IpAddr>,
    capacity: usize,
    ttl: Duration,
    pub pending: VecDeque<Pending>,
    pending_capacity: usize,
    /// Last request sent per address being resolved (RFC 1122 §2.3.2.1: at most one per
    /// second per destination).
    requested: Vec<(IpAddr, Instant)>,
    /// When the stack next looks for waiting frames to ask again for.
    pub retry_pass_at: Instant,
}

impl ArpCache {
    pub fn new(capacity: usize, ttl: Duration, pending_capacity: usize) -> ArpCache {
        ArpCache {
            entries: HashMap::with_capacity_and_hasher(capacity, ahash::RandomState::new()),
            unused: VecDeque::with_capacity(capacity),
            capacity,
            ttl,
            pending: VecDeque::with_capacity(pending_capacity),
            pending_capacity,
            requested: Vec::with_capacity(pending_capacity),
            retry_pass_at: Instant::ZERO,
        }
    }

    /// The MAC address for a frame going out to `ip`, if known and fresh; marks the entry used.
    pub fn lookup(&mut self, ip: impl Into<IpAddr>, now: Instant) -> Option<MacAddr> {
        let ip = ip.into();
        let e = self.entries.get_mut(&ip).filter(|e| e.expires > now)?;
        e.used = Some(now);
        Some(e.mac)
    }

    /// The mapping for `ip` that has expired but is not yet a lifetime past it (RFC 4861
    /// §7.3.2's STALE): still used to send, while a new solicitation refreshes it (DELAY and
    /// PROBE, done with a broadcast or multicast solicitation). Frames need not wait for an
    /// answer from a neighbour that almost certainly has not moved.
    pub fn stale(&mut self, ip: impl Into<IpAddr>, now: Instant) -> Option<MacAddr> {
        let ttl = self.ttl;
        let e = self.entries.get_mut(&ip.into()).filter(|e| e.expires <= now && now < e.expires + ttl)?;
        e.used = Some(now);
        Some(e.mac)
    }

    /// Neighbours cached.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Learn or refresh a mapping. When full, room is made by the oldest entry never sent to,
    /// else an expired one, else the one sent to longest ago: neighbours with live
    /// connections stay.
    pub fn insert(&mut self, ip: impl Into<IpAddr>, mac: MacAddr, now: Instant) {
        let ip = ip.into();
        let expires = now + self.ttl;
        if let Some(e) = self.entries.get_mut(&ip) {
            e.mac = mac;
            e.expires = expires;
            return;
        }
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity {
            self.evict(now);
        }
        self.entries.insert(ip, Entry { mac, expires, used: None });
        self.unused.push_back(ip);
        self.requested.retain(|(r, _)| *r != ip);
    }

    fn evict(&mut self, now: Instant) {
        while let Some(ip) = self.unused.pop_front() {
            if matches!(self.entries.get(&ip), Some(e) if e.used.is_none()) {
                self.entries.remove(&ip);
                return;
            }
        }
        // Every entry has been sent to: an expired one, else the least recently used.
        let victim = self.entries.iter().min_by_key(|(_, e)| (e.expires > now, e.used)).map(|(ip, _)| *ip);
        if let Some(ip) = victim {
            self.entries.remove(&ip);
        }
    }

    /// Upper-layer reachability confirmation (RFC 4861 §7.3.1; RFC 1122 §2.3.2.1 allows the
    /// same for ARP): the mapping we have for `ip`, fresh or not, is good for another lifetime.
    pub fn confirm(&mut self, ip: impl Into<IpAddr>, now: Instant) {
        if let Some(e) = self.entries.get_mut(&ip.into()) {
            e.expires = now + self.ttl;
        }
    }

    /// Only refresh a mapping we already have (RFC 826 "merge" for requests not for us).
    pub fn refresh(&mut self, ip: impl Into<IpAddr>, mac: MacAddr, now: Instant) {
        let ip = ip.into();
        if self.entries.contains_key(&ip) {
            self.insert(ip, mac, now);
        }
    }

    /// Whether a request for `ip` should go out now (none sent in the last second).
    pub fn should_request(&mut self, ip: impl Into<IpAddr>, now: Instant) -> bool {
        let ip = ip.into();
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
    pub fn enqueue(&mut self, next_hop: impl Into<IpAddr>, frame: Frame, now: Instant) -> Result<(), Frame> {
        let next_hop = next_hop.into();
        if self.pending.len() >= self.pending_capacity {
            return Err(frame);
        }
        self.pending.push_back(Pending { next_hop, frame, since: now });
        Ok(())
    }

    /// Addresses with frames waiting, to ask again for.
    pub fn pending_hops(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.pending.iter().map(|p| p.next_hop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

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
        c.insert(C, m, Instant::from_secs(30)); // evicts B, never sent to (A was, at 59 s)
        assert_eq!(c.lookup(B, Instant::from_secs(31)), None);
        assert!(c.lookup(A, Instant::from_secs(31)).is_some());
        assert!(c.lookup(C, Instant::from_secs(31)).is_some());
        assert_eq!(c.len(), 2);
    }

    /// A flood of requests from invented neighbours never evicts one we send to; among
    /// neighbours all sent to, the least recently used goes.
    #[test]
    fn neighbours_we_send_to_outlive_a_flood() {
        let mut c = ArpCache::new(4, Duration::from_secs(60), 4);
        let m = MacAddr([2, 0, 0, 0, 0, 1]);
        c.insert(A, m, Instant::ZERO);
        c.insert(B, m, Instant::ZERO);
        c.lookup(A, Instant::from_secs(1)).unwrap();
        c.lookup(B, Instant::from_secs(2)).unwrap();
        for i in 0..100_000u32 {
            let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 0)) + i);
            c.insert(ip, m, Instant::from_secs(3));
        }
        assert_eq!(c.len(), 4);
        assert!(c.unused.len() <= 4 + 2, "the queue of unused entries stays bounded");
        assert!(c.lookup(A, Instant::from_secs(4)).is_some() && c.lookup(B, Instant::from_secs(4)).is_some());
        // Four neighbours all in use: the one sent to longest ago makes room.
        for (i, ip) in [C, Ipv4Addr::new(198, 18, 0, 4)].into_iter().enumerate() {
            c.insert(ip, m, Instant::from_secs(5));
            c.lookup(ip, Instant::from_secs(6 + i as u64)).unwrap();
        }
        c.lookup(B, Instant::from_secs(9)).unwrap();
        c.insert(Ipv4Addr::new(198, 18, 0, 5), m, Instant::from_secs(10));
        assert!(c.lookup(A, Instant::from_secs(10)).is_none(), "A was sent to longest ago");
        assert!(c.lookup(B, Instant::from_secs(10)).is_some());
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
