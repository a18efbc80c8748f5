//! Initial sequence numbers (RFC 6528 §3): `ISN = M + F(localip, localport, remoteip,
//! remoteport, secretkey)`, where M is a timer ticking every 4 µs and F is a keyed hash —
//! SipHash-2-4 here, as RFC 6528 suggests a PRF keyed with a secret of at least 128 bits.
//!
//! The secret comes from the caller (the stack draws it from the OS at start): the TCP core
//! reads no clock and no entropy, so the same secret and `now` give the same ISN, which keeps
//! the simulator deterministic.

use super::SeqNum;
use crate::time::Instant;
use core::hash::Hasher;
use core::net::{IpAddr, SocketAddr};
use siphasher::sip::SipHasher24;

/// The keyed ISN generator.
#[derive(Clone)]
pub struct IsnGenerator {
    key: [u8; 16],
}

impl core::fmt::Debug for IsnGenerator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("IsnGenerator { key: <secret> }")
    }
}

/// An address and port into a keyed hash: 4 or 16 address bytes, then the port (an IPv4
/// tuple hashes as it always did).
pub(crate) fn write_addr(h: &mut impl Hasher, a: SocketAddr) {
    match a.ip() {
        IpAddr::V4(ip) => h.write(&ip.octets()),
        IpAddr::V6(ip) => h.write(&ip.octets()),
    }
    h.write(&a.port().to_be_bytes());
}

impl IsnGenerator {
    /// A generator keyed with `secret` (at least 128 bits, RFC 6528 §3), which the caller draws.
    pub fn new(secret: [u8; 16]) -> IsnGenerator {
        IsnGenerator { key: secret }
    }

    /// The keyed hash of a 4-tuple, also the base of SYN cookies and timestamp offsets.
    pub fn hash(&self, local: impl Into<SocketAddr>, remote: impl Into<SocketAddr>, salt: u8) -> u64 {
        let (local, remote): (SocketAddr, SocketAddr) = (local.into(), remote.into());
        let mut h = SipHasher24::new_with_key(&self.key);
        write_addr(&mut h, local);
        write_addr(&mut h, remote);
        h.write_u8(salt);
        h.finish()
    }

    /// RFC 6528 §3: the ISN for a connection opened at `now`.
    pub fn isn(&self, now: Instant, local: impl Into<SocketAddr>, remote: impl Into<SocketAddr>) -> SeqNum {
        let (local, remote): (SocketAddr, SocketAddr) = (local.into(), remote.into());
        // M: a 4 µs timer (RFC 6528 §3, after RFC 793 §3.3). Wraps every ~4.77 hours.
        let m = (now.as_micros() / 4) as u32;
        SeqNum(m.wrapping_add(self.hash(local, remote, 0) as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, SocketAddrV4};

    const L: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80);
    const R: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 40000);

    #[test]
    fn advances_with_the_4us_clock_and_depends_on_tuple_and_key() {
        let g = IsnGenerator::new([7; 16]);
        let a = g.isn(Instant::from_micros(0), L, R);
        let b = g.isn(Instant::from_micros(4_000), L, R);
        assert_eq!(b - a, 1000, "1000 ticks of 4 µs in 4 ms");
        let other_port = SocketAddrV4::new(*R.ip(), 40001);
        assert_ne!(g.isn(Instant::ZERO, L, other_port), a);
        assert_ne!(IsnGenerator::new([8; 16]).isn(Instant::ZERO, L, R), a);
        assert_eq!(IsnGenerator::new([7; 16]).isn(Instant::ZERO, L, R), a, "deterministic");
    }
}
