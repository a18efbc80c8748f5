//! Local port choice for active opens: RFC 6056 §3.3.3 ("Algorithm 3: simple hash-based"): a
//! keyed hash of the addresses picks where to start searching the ephemeral range, so ports
//! are hard to guess yet spread; a port is taken only if the 4-tuple is free (TIME-WAIT
//! included). With an RSS key and queue count, only ports whose replies hash to this core's
//! queue are taken (the way mTCP and F-Stack keep a flow on the core that opened it).

use crate::tcp::IsnGenerator;
use crate::wire::toeplitz::Toeplitz4Tuple;
use core::net::SocketAddr;

/// RSS as the NIC does it: Toeplitz hash of the received packet's 4-tuple, then the
/// indirection table (default: entry i = i mod queues).
#[derive(Debug, Clone)]
pub struct Rss {
    /// The NIC's Toeplitz hash, with its key.
    pub hasher: Toeplitz4Tuple,
    /// Receive queues the NIC spreads flows over.
    pub queues: u16,
    /// The queue this core serves.
    pub queue: u16,
    /// Indirection table size (a power of two; 128 on most NICs).
    pub table_size: u32,
}

impl Rss {
    /// The queue a packet from `remote` to `local` lands on.
    pub fn queue_of(&self, local: impl Into<SocketAddr>, remote: impl Into<SocketAddr>) -> u16 {
        let (local, remote): (SocketAddr, SocketAddr) = (local.into(), remote.into());
        let h = self.hasher.hash_ip(remote.ip(), local.ip(), remote.port(), local.port());
        ((h & (self.table_size - 1)) % self.queues as u32) as u16
    }
}

#[derive(Debug)]
pub(crate) struct PortAllocator {
    first: u16,
    count: u32,
    key: IsnGenerator,
    /// RFC 6056 Algorithm 3's `next_ephemeral`.
    next: u32,
}

impl PortAllocator {
    pub fn new(range: (u16, u16), key: IsnGenerator) -> PortAllocator {
        let (lo, hi) = (range.0.min(range.1), range.0.max(range.1));
        PortAllocator { first: lo, count: (hi - lo) as u32 + 1, key, next: 0 }
    }

    /// A free local port for a connection from `local_ip` to `remote`, or `None` when every
    /// port of the range is taken for this destination.
    pub fn allocate(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        rss: Option<&Rss>,
        taken: impl Fn(u16) -> bool,
    ) -> Option<u16> {
        // F(local, remote, secret): the port part of `local` is left out (it is what we pick).
        let offset = self.key.hash(SocketAddr::new(local.ip(), 0), remote, 1) as u32;
        for i in 0..self.count {
            let port = self.first + (offset.wrapping_add(self.next).wrapping_add(i) % self.count) as u16;
            if taken(port) {
                continue;
            }
            if let Some(r) = rss {
                if r.queue_of(SocketAddr::new(local.ip(), port), remote) != r.queue {
                    continue;
                }
            }
            self.next = self.next.wrapping_add(i + 1);
            return Some(port);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::toeplitz::MICROSOFT_KEY;
    use core::net::Ipv4Addr;

    const L: SocketAddr = SocketAddr::new(core::net::IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)), 0);
    const R: SocketAddr = SocketAddr::new(core::net::IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)), 80);

    #[test]
    fn skips_taken_ports_and_exhausts() {
        let mut p = PortAllocator::new((50000, 50003), IsnGenerator::new([3; 16]));
        let mut got = std::collections::HashSet::new();
        for _ in 0..4 {
            let port = p.allocate(L, R, None, |x| got.contains(&x)).unwrap();
            assert!((50000..=50003).contains(&port));
            got.insert(port);
        }
        assert_eq!(p.allocate(L, R, None, |x| got.contains(&x)), None);
    }

    #[test]
    fn rss_aware_ports_land_on_our_queue() {
        let rss = Rss { hasher: Toeplitz4Tuple::new(&MICROSOFT_KEY), queues: 4, queue: 2, table_size: 128 };
        let mut p = PortAllocator::new((32768, 60999), IsnGenerator::new([3; 16]));
        for _ in 0..50 {
            let port = p.allocate(L, R, Some(&rss), |_| false).unwrap();
            assert_eq!(rss.queue_of(SocketAddr::new(L.ip(), port), R), 2);
        }
    }
}
