//! The neighbour cache, one for both families: IPv4 over Ethernet (RFC 826; RFC 1122
//! §2.3.2.1 on flooding and expiry) and IPv6 neighbour discovery (RFC 4861 §7.3: learned from
//! solicitations and advertisements). Bounded, with expiry and refresh, and a bounded queue of
//! frames waiting for a resolution.
//!
//! Neighbour unreachability detection (RFC 4861 §7.3), for both families as Linux's
//! neighbour table does it: an entry is REACHABLE for `ttl` after a solicited answer or an
//! upper-layer confirmation (TCP progress, §7.3.1), then STALE. Sending to a STALE entry uses
//! it and starts DELAY; a confirmation within `DELAY_FIRST_PROBE` makes it REACHABLE again,
//! else PROBE: up to `MAX_UNICAST_SOLICIT` unicast solicitations (or ARP requests) a
//! `RETRANS_TIMER` apart, and without an answer the entry is deleted, so the next packet
//! starts over from INCOMPLETE (a multicast solicitation or broadcast request). A
//! solicitation or an unsolicited advertisement from a neighbour makes (or leaves) its entry
//! STALE, never REACHABLE (§7.2.3, §7.2.5): it shows the neighbour exists, not that it hears
//! us.

use crate::io::Frame;
use crate::time::{Duration, Instant};
use crate::wire::MacAddr;
use core::net::IpAddr;
use std::collections::{HashMap, VecDeque};

/// RFC 4861 §10: how long a STALE entry in use waits for a confirmation before probing.
pub(crate) const DELAY_FIRST_PROBE: Duration = Duration::from_secs(5);
/// RFC 4861 §10: between unicast probes.
pub(crate) const RETRANS_TIMER: Duration = Duration::from_secs(1);
/// RFC 4861 §10: unicast probes before the neighbour is given up.
pub(crate) const MAX_UNICAST_SOLICIT: u8 = 3;

/// Where an entry is past REACHABLE (RFC 4861 §7.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nud {
    /// REACHABLE until `expires`, STALE after.
    Fresh,
    /// Sent to while STALE: waiting until then for a confirmation.
    Delay { until: Instant },
    /// `sent` unicast probes so far; the next (or the end) due at `next`.
    Probe { sent: u8, next: Instant },
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    mac: MacAddr,
    expires: Instant,
    /// Sent to at least once (looked up for a frame going out): a neighbour we talk to,
    /// kept over ones that only announced themselves when the cache is full.
    used: Option<Instant>,
    nud: Nud,
}

/// What `ArpCache::resolve` found for a next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The address to send to, if any (INCOMPLETE or unknown: none).
    pub mac: Option<MacAddr>,
    /// A unicast probe is due now (to `mac`).
    pub probe: bool,
    /// The entry's last probe went unanswered: it was deleted now.
    pub gave_up: bool,
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
    /// When the stack next looks for probes due (entries in DELAY or PROBE).
    pub probe_pass_at: Instant,
    /// Entries in DELAY or PROBE (the probe pass is skipped while there are none).
    probing: usize,
    /// Moves whenever an entry's address changes or an entry goes: a copy of a REACHABLE
    /// mapping kept elsewhere ([`ArpCache::reachable`]: a connection's next hop) holds while
    /// this has not moved and the mapping's time lasts.
    pub generation: u64,
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
            probe_pass_at: Instant::ZERO,
            probing: 0,
            generation: 0,
        }
    }

    /// The MAC address for a frame going out to `ip`, if REACHABLE; marks the entry used.
    #[cfg(test)]
    pub fn lookup(&mut self, ip: impl Into<IpAddr>, now: Instant) -> Option<MacAddr> {
        let ip = ip.into();
        let e = self.entries.get_mut(&ip).filter(|e| e.nud == Nud::Fresh && e.expires > now)?;
        e.used = Some(now);
        Some(e.mac)
    }

    /// `ip`'s mapping while it is REACHABLE, and until when, for a sender to keep and use
    /// instead of [`ArpCache::resolve`] while [`ArpCache::generation`] stays: before then
    /// `resolve` would only have handed out the same address. (It also marks the entry used,
    /// as `resolve` does; a sender using its copy leaves that mark as old as the copy.)
    pub fn reachable(&mut self, ip: impl Into<IpAddr>, now: Instant) -> Option<(MacAddr, Instant)> {
        let e = self.entries.get_mut(&ip.into()).filter(|e| e.nud == Nud::Fresh && now < e.expires)?;
        e.used = Some(now);
        Some((e.mac, e.expires))
    }

    /// The address to send a frame for `ip` to, moving the entry along RFC 4861 §7.3.3 as
    /// sending does: REACHABLE sends; STALE sends and enters DELAY; DELAY past its time
    /// enters PROBE with a first unicast probe; PROBE sends, with another probe when one is
    /// due, and after the last one unanswered the entry is deleted (the frame then waits for
    /// a new resolution). An entry a lifetime past REACHABLE and never sent to since is
    /// forgotten (Linux's `gc_stale_time`).
    pub fn resolve(&mut self, ip: impl Into<IpAddr>, now: Instant) -> Resolved {
        let ip = ip.into();
        let none = Resolved { mac: None, probe: false, gave_up: false };
        let ttl = self.ttl;
        let Some(e) = self.entries.get_mut(&ip) else { return none };
        if e.nud == Nud::Fresh && now >= e.expires + ttl {
            self.entries.remove(&ip);
            self.generation += 1;
            return none;
        }
        e.used = Some(now);
        let mac = Some(e.mac);
        match e.nud {
            Nud::Fresh if now < e.expires => Resolved { mac, ..none },
            Nud::Fresh => {
                e.nud = Nud::Delay { until: now + DELAY_FIRST_PROBE };
                self.probing += 1;
                Resolved { mac, ..none }
            }
            Nud::Delay { .. } | Nud::Probe { .. } => match self.step_probe(ip, now) {
                Some(probe) => Resolved { mac, probe, gave_up: false },
                None => Resolved { gave_up: true, ..none },
            },
        }
    }

    /// Move a DELAY or PROBE entry on at `now`: `Some(true)` when a unicast probe is due now,
    /// `Some(false)` when nothing is, `None` when the entry was given up (deleted).
    fn step_probe(&mut self, ip: IpAddr, now: Instant) -> Option<bool> {
        let e = self.entries.get_mut(&ip)?;
        match e.nud {
            Nud::Delay { until } if now >= until => {
                e.nud = Nud::Probe { sent: 1, next: now + RETRANS_TIMER };
                Some(true)
            }
            Nud::Probe { sent, next } if now >= next => {
                if sent >= MAX_UNICAST_SOLICIT {
                    self.remove(ip);
                    return None;
                }
                e.nud = Nud::Probe { sent: sent + 1, next: now + RETRANS_TIMER };
                Some(true)
            }
            _ => Some(false),
        }
    }

    /// The timer side of DELAY and PROBE, for entries nothing is being sent to: the
    /// unicast probes due now, as (address, MAC), into `out`; entries whose last probe went
    /// unanswered are deleted and counted in the return value.
    pub fn due_probes(&mut self, now: Instant, out: &mut Vec<(IpAddr, MacAddr)>) -> usize {
        if self.probing == 0 {
            return 0;
        }
        let probing: Vec<IpAddr> =
            self.entries.iter().filter(|(_, e)| e.nud != Nud::Fresh).map(|(ip, _)| *ip).collect();
        let mut failed = 0;
        for ip in probing {
            let mac = self.entries[&ip].mac;
            match self.step_probe(ip, now) {
                Some(true) => out.push((ip, mac)),
                Some(false) => {}
                None => failed += 1,
            }
        }
        failed
    }

    /// Neighbours cached.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Learn or refresh a mapping. When full, room is made by the oldest entry never sent to,
    /// else an expired one, else the one sent to longest ago: neighbours with live
    /// connections stay.
    pub fn insert(&mut self, ip: impl Into<IpAddr>, mac: MacAddr, now: Instant) {
        self.put(ip.into(), mac, now, true);
    }

    /// Learn `ip` at `mac` from the neighbour's own solicitation (or ARP request): STALE,
    /// usable at once (RFC 4861 §7.2.3). An entry with the same address is left as it is;
    /// a changed address replaces it, STALE.
    pub fn learn(&mut self, ip: impl Into<IpAddr>, mac: MacAddr, now: Instant) {
        let ip = ip.into();
        match self.entries.get(&ip) {
            Some(e) if e.mac == mac => {}
            _ => self.put(ip, mac, now, false),
        }
    }

    /// Make `ip`'s entry `mac`: REACHABLE for a lifetime, or STALE at once.
    fn put(&mut self, ip: IpAddr, mac: MacAddr, now: Instant, reachable: bool) {
        let expires = if reachable { now + self.ttl } else { now };
        if let Some(e) = self.entries.get_mut(&ip) {
            if e.mac != mac || expires < e.expires {
                self.generation += 1;
            }
            e.mac = mac;
            e.expires = expires;
            if e.nud != Nud::Fresh {
                e.nud = Nud::Fresh;
                self.probing -= 1;
            }
            return;
        }
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity {
            self.evict(now);
        }
        self.entries.insert(ip, Entry { mac, expires, used: None, nud: Nud::Fresh });
        self.unused.push_back(ip);
        self.requested.retain(|(r, _)| *r != ip);
    }

    fn evict(&mut self, now: Instant) {
        while let Some(ip) = self.unused.pop_front() {
            if matches!(self.entries.get(&ip), Some(e) if e.used.is_none()) {
                self.remove(ip);
                return;
            }
        }
        // Every entry has been sent to: an expired one, else the least recently used.
        let victim = self.entries.iter().min_by_key(|(_, e)| (e.expires > now, e.used)).map(|(ip, _)| *ip);
        if let Some(ip) = victim {
            self.remove(ip);
        }
    }

    fn remove(&mut self, ip: IpAddr) {
        if let Some(e) = self.entries.remove(&ip) {
            self.generation += 1;
            if e.nud != Nud::Fresh {
                self.probing -= 1;
            }
        }
    }

    /// Upper-layer reachability confirmation (RFC 4861 §7.3.1; RFC 1122 §2.3.2.1 allows the
    /// same for ARP): the mapping we have for `ip`, fresh or not, is good for another lifetime.
    pub fn confirm(&mut self, ip: impl Into<IpAddr>, now: Instant) {
        if let Some(e) = self.entries.get_mut(&ip.into()) {
            e.expires = now + self.ttl;
            if e.nud != Nud::Fresh {
                e.nud = Nud::Fresh;
                self.probing -= 1;
            }
        }
    }

    /// Only update a mapping we already have (RFC 826 "merge" for requests not for us; an
    /// unsolicited advertisement, RFC 4861 §7.2.5): a changed address replaces the old one,
    /// STALE; the same address changes nothing.
    pub fn refresh(&mut self, ip: impl Into<IpAddr>, mac: MacAddr, now: Instant) {
        let ip = ip.into();
        if self.entries.contains_key(&ip) {
            self.learn(ip, mac, now);
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

    /// A kept copy of a mapping (`reachable`) holds until its time ends or the generation
    /// moves: on a changed address, a STALE relearn, a removal; not on a refresh to the same
    /// address or a confirmation, which only make the mapping last longer.
    #[test]
    fn reachable_copies_are_invalidated_by_every_change_that_matters() {
        let mut c = ArpCache::new(1, Duration::from_secs(60), 4);
        let (m, n) = (MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 9]));
        c.insert(A, m, Instant::ZERO);
        assert_eq!(c.reachable(A, Instant::from_secs(1)), Some((m, Instant::from_secs(60))));
        assert_eq!(c.reachable(A, Instant::from_secs(60)), None, "not past REACHABLE");
        let g = c.generation;
        c.insert(A, m, Instant::from_secs(2));
        c.confirm(A, Instant::from_secs(3));
        assert_eq!(c.generation, g, "longer-lived, same address: copies still good");
        c.insert(A, n, Instant::from_secs(4));
        assert!(c.generation > g, "a new address");
        let g = c.generation;
        c.learn(A, m, Instant::from_secs(5));
        assert!(c.generation > g, "relearnt STALE");
        assert_eq!(c.reachable(A, Instant::from_secs(5)), None);
        let g = c.generation;
        c.insert(B, m, Instant::from_secs(6)); // evicts A (capacity 1)
        assert!(c.generation > g, "removed");
    }

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
    fn unreachability_detection_delays_probes_and_gives_up() {
        let t = Instant::from_secs;
        let mut c = ArpCache::new(4, Duration::from_secs(30), 4);
        let m = MacAddr([2, 0, 0, 0, 0, 9]);
        let quiet = Resolved { mac: Some(m), probe: false, gave_up: false };
        c.insert(A, m, t(0)); // a solicited answer: REACHABLE until 30 s
        assert_eq!(c.resolve(A, t(10)), quiet);
        // STALE from 30 s: sending uses it and starts DELAY, without a probe.
        assert_eq!(c.resolve(A, t(31)), quiet);
        assert_eq!(c.lookup(A, t(31)), None, "not REACHABLE");
        // A confirmation (TCP progress) within DELAY: REACHABLE again, nothing probed.
        c.confirm(A, t(33));
        assert_eq!((c.lookup(A, t(34)), c.probing), (Some(m), 0));
        // STALE again at 63, sent to at 64: DELAY until 69, nothing due before.
        assert_eq!(c.resolve(A, t(64)), quiet);
        let mut out = Vec::new();
        assert_eq!((c.due_probes(t(68), &mut out), out.len()), (0, 0));
        // 69: PROBE, the first unicast probe (found by the timer pass).
        c.due_probes(t(69), &mut out);
        assert_eq!(out, vec![(IpAddr::from(A), m)]);
        // Sending goes on to the address we have; the second probe is due at 70.
        assert_eq!(c.resolve(A, Instant::from_millis(69_500)), quiet);
        assert_eq!(c.resolve(A, t(70)), Resolved { probe: true, ..quiet });
        out.clear();
        c.due_probes(t(71), &mut out);
        assert_eq!(out.len(), 1, "the third and last");
        // 72, unanswered: given up; the next packet starts over from INCOMPLETE.
        out.clear();
        assert_eq!((c.due_probes(t(72), &mut out), out.len()), (1, 0));
        assert_eq!(c.resolve(A, t(72)), Resolved { mac: None, probe: false, gave_up: false });
        assert_eq!((c.len(), c.probing), (0, 0));
        // An answer while probing makes it REACHABLE and stops the probes.
        c.insert(B, m, t(100));
        c.resolve(B, t(131));
        c.due_probes(t(136), &mut out);
        c.insert(B, m, t(136));
        assert_eq!((c.lookup(B, t(137)), c.probing), (Some(m), 0));
        // The same as the send side finding it: a deletion reported once.
        c.resolve(B, t(167));
        for s in [172, 173, 174] {
            c.resolve(B, t(s));
        }
        assert!(c.resolve(B, t(175)).gave_up);
    }

    #[test]
    fn a_neighbours_own_messages_make_its_entry_stale_not_reachable() {
        let t = Instant::from_secs;
        let mut c = ArpCache::new(4, Duration::from_secs(30), 4);
        let (m, n) = (MacAddr([2, 0, 0, 0, 0, 9]), MacAddr([2, 0, 0, 0, 0, 10]));
        c.learn(A, m, t(0)); // its solicitation (or ARP request)
        assert_eq!(c.lookup(A, t(0)), None, "STALE: it exists, whether it hears us is not known");
        assert_eq!(c.resolve(A, t(0)).mac, Some(m), "usable at once");
        c.learn(A, m, t(1)); // the same address again: DELAY goes on
        assert_eq!(c.probing, 1);
        c.learn(A, n, t(2)); // a new one replaces it, STALE
        assert_eq!((c.resolve(A, t(2)).mac, c.lookup(A, t(2))), (Some(n), None));
        c.refresh(B, m, t(3)); // an unsolicited advertisement of a stranger: nothing learnt
        assert_eq!(c.len(), 1);
        c.insert(A, n, t(4)); // a solicited answer: REACHABLE
        assert_eq!((c.lookup(A, t(5)), c.probing), (Some(n), 0));
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
