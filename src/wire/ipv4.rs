//! IPv4 (RFC 791).
//!
//! * Header options (IHL > 5) are skipped safely: the payload starts after them, their
//!   contents are not interpreted (RFC 1122 §3.2.1.8 allows a host to ignore unknown options).
//! * Fragments (MF set or a non-zero offset, RFC 791 §3.2) are recognised and refused with
//!   [`Error::Fragmented`] until reassembly exists; the stack counts them.
//! * Ethernet padding after `total_len` is trimmed from the payload.
//! * Emitted headers are always 20 bytes, with a checksum the stack computed.

use super::arp::ipv4_at;
use super::checksum;
use super::{be16, put16, Error, Result, RxChecksum};
use core::net::Ipv4Addr;

mod field {
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// The IPv4 protocol field, and IPv6's Next Header (the same numbers, IANA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    /// 1: ICMP (RFC 792).
    Icmp,
    /// 6: TCP (RFC 9293).
    Tcp,
    /// 17: UDP (RFC 768).
    Udp,
    /// ICMPv6 (RFC 4443), over IPv6 only.
    Icmpv6,
    /// Any other protocol number, carried as read.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        match v {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            58 => IpProtocol::Icmpv6,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(p: IpProtocol) -> u8 {
        match p {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Unknown(v) => v,
        }
    }
}

/// A view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wrap a buffer without checking it. Accessors may panic if it is shorter than the header or
    /// its lengths point past the end.
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wrap untrusted bytes. Checks that the buffer holds a 20-byte header, that the version
    /// is 4, that the header length is at least 5 words and fits inside `total_len`, and that
    /// `total_len` fits inside the buffer. After this, no accessor panics.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The checks of [`Self::new_checked`]: a 20-byte header, version 4, a header length of at least
    /// 5 words within `total_len`, and `total_len` within the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::Malformed);
        }
        let hl = self.header_len();
        let total = self.total_len() as usize;
        if hl < HEADER_LEN || total < hl {
            return Err(Error::Malformed);
        }
        if len < total {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Unwrap the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// The version field (4 for a valid packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::VER_IHL] & 0x0f) as usize) * 4
    }
    /// The DSCP/ECN byte (the old TOS byte).
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }
    /// The total length field: header and payload, in bytes.
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    /// The identification field.
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }
    /// The DF (Don't Fragment) flag.
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }
    /// The MF (More Fragments) flag.
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK) << 3
    }
    /// Whether this is a fragment: MF set or a non-zero fragment offset (RFC 791 §3.2).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }
    /// The time-to-live field.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }
    /// The protocol field.
    pub fn protocol(&self) -> IpProtocol {
        self.buffer.as_ref()[field::PROTOCOL].into()
    }
    /// The header checksum field as it is on the wire.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// The source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::SRC)
    }
    /// The destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::DST)
    }
    /// The header's checksum is correct (the header sums to all ones).
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(&self.buffer.as_ref()[..self.header_len()]) == 0xffff
    }
    /// The payload: after the options, up to `total_len` (Ethernet padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// The payload, mutably: after the options, up to `total_len`.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), self.total_len() as usize);
        &mut self.buffer.as_mut()[start..end]
    }
    /// Set the DSCP/ECN byte and fix the checksum incrementally (RFC 1624): what a router
    /// marking Congestion Experienced does (RFC 3168 §5).
    pub fn set_dscp_ecn_incremental(&mut self, v: u8) {
        let b = self.buffer.as_mut();
        let old = be16(b, field::VER_IHL);
        b[field::DSCP_ECN] = v;
        let new = be16(b, field::VER_IHL);
        let c = checksum::update16(be16(b, field::CHECKSUM), old, new);
        put16(b, field::CHECKSUM, c);
    }
    /// Set the TTL and fix the checksum incrementally (RFC 1624), as a forwarder would.
    pub fn set_ttl_incremental(&mut self, ttl: u8) {
        let b = self.buffer.as_mut();
        let old = be16(b, field::TTL);
        b[field::TTL] = ttl;
        let new = be16(b, field::TTL);
        let c = checksum::update16(be16(b, field::CHECKSUM), old, new);
        put16(b, field::CHECKSUM, c);
    }
}

/// The meaning of an IPv4 header (options are not kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: IpProtocol,
    /// Length of what follows the header.
    pub payload_len: usize,
    /// Time to live (hops).
    pub ttl: u8,
    /// The identification field.
    pub ident: u16,
    /// The DF (Don't Fragment) flag.
    pub dont_frag: bool,
    /// DSCP (6 bits) and ECN (2 bits), the old TOS byte.
    pub dscp_ecn: u8,
}

impl Ipv4Repr {
    /// Parse a checked packet. The header checksum is always verified (no NIC or veth leaves
    /// it partial); fragments are refused.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>, _rx: RxChecksum) -> Result<Ipv4Repr> {
        p.check_len()?;
        if !p.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        // RFC 791 §3.2: MF or a non-zero offset makes this a fragment. No reassembly yet.
        if p.is_fragment() {
            return Err(Error::Fragmented);
        }
        Ok(Ipv4Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.total_len() as usize - p.header_len(),
            ttl: p.ttl(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
            dscp_ecn: p.dscp_ecn(),
        })
    }

    /// Parse the IP header quoted inside an ICMP error (RFC 792): only the header need be
    /// present (the datagram it describes is cut short), the checksum is not verified, and
    /// the returned slice is whatever of the original payload was quoted.
    pub fn parse_quoted(bytes: &[u8]) -> Result<(Ipv4Repr, &[u8])> {
        if bytes.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let p = Ipv4Packet::new_unchecked(bytes);
        if p.version() != 4 || p.header_len() < HEADER_LEN || (p.total_len() as usize) < p.header_len() {
            return Err(Error::Malformed);
        }
        if bytes.len() < p.header_len() {
            return Err(Error::Truncated);
        }
        let repr = Ipv4Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.total_len() as usize - p.header_len(),
            ttl: p.ttl(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
            dscp_ecn: p.dscp_ecn(),
        };
        Ok((repr, &bytes[p.header_len()..]))
    }

    /// Length of the header on the wire: always [`HEADER_LEN`] (20 bytes; options are not emitted).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the 20-byte header (with checksum) into the front of `buf`. The payload is the
    /// caller's: it may already be in place after the header (zero-copy transmit).
    /// `payload_len` must keep `total_len` within 16 bits.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < HEADER_LEN {
            return Err(Error::BufferTooSmall);
        }
        let total = HEADER_LEN + self.payload_len;
        if total > u16::MAX as usize {
            return Err(Error::Malformed);
        }
        buf[field::VER_IHL] = 0x45;
        buf[field::DSCP_ECN] = self.dscp_ecn;
        put16(buf, field::LENGTH, total as u16);
        put16(buf, field::IDENT, self.ident);
        put16(buf, field::FLG_OFF, if self.dont_frag { FLAG_DF } else { 0 });
        buf[field::TTL] = self.ttl;
        buf[field::PROTOCOL] = self.protocol.into();
        put16(buf, field::CHECKSUM, 0);
        buf[field::SRC..field::SRC + 4].copy_from_slice(&self.src.octets());
        buf[field::DST..field::DST + 4].copy_from_slice(&self.dst.octets());
        let c = checksum::checksum(&buf[..HEADER_LEN]);
        put16(buf, field::CHECKSUM, c);
        Ok(HEADER_LEN)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::arp::tests::arb_ip;
    use proptest::prelude::*;

    pub fn arb_repr(max_payload: usize) -> impl Strategy<Value = Ipv4Repr> {
        (arb_ip(), arb_ip(), any::<u8>(), 0..=max_payload, any::<u8>(), any::<u16>(), any::<bool>(), any::<u8>())
            .prop_map(|(src, dst, proto, payload_len, ttl, ident, dont_frag, dscp_ecn)| Ipv4Repr {
                src,
                dst,
                protocol: IpProtocol::from(proto),
                payload_len,
                ttl,
                ident,
                dont_frag,
                dscp_ecn,
            })
    }

    fn sample() -> Vec<u8> {
        let repr = Ipv4Repr {
            src: Ipv4Addr::new(198, 18, 0, 1),
            dst: Ipv4Addr::new(198, 18, 0, 2),
            protocol: IpProtocol::Udp,
            payload_len: 4,
            ttl: 64,
            ident: 0x1234,
            dont_frag: true,
            dscp_ecn: 0,
        };
        let mut buf = vec![0u8; 24];
        repr.emit(&mut buf).unwrap();
        buf[20..].copy_from_slice(&[1, 2, 3, 4]);
        buf
    }

    #[test]
    fn checks_version_lengths_and_checksum() {
        let buf = sample();
        assert!(Ipv4Packet::new_checked(&buf[..]).is_ok());
        assert_eq!(Ipv4Packet::new_checked(&buf[..19]).unwrap_err(), Error::Truncated);
        assert_eq!(Ipv4Packet::new_checked(&buf[..23]).unwrap_err(), Error::Truncated);
        let mut b = buf.clone();
        b[0] = 0x65; // version 6
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        let mut b = buf.clone();
        b[0] = 0x44; // IHL 4
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        let mut b = buf.clone();
        b[0] = 0x47; // IHL 7 > total length 24
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        let mut b = buf.clone();
        b[8] ^= 1; // TTL changed, checksum stale
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p, RxChecksum::Verify), Err(Error::BadChecksum));
        // The IP checksum is verified even when L4 checksums are trusted.
        assert_eq!(Ipv4Repr::parse(&p, RxChecksum::TrustL4), Err(Error::BadChecksum));
    }

    #[test]
    fn options_are_skipped_and_padding_trimmed() {
        // IHL 6: one word of options (NOP NOP NOP EOL), then 4 payload bytes, then 6 bytes of
        // Ethernet padding.
        let mut b = vec![0x46, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, 1, 1, 1, 0];
        b.extend_from_slice(&[9, 8, 7, 6]);
        let c = checksum::checksum(&b[..24]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        b.extend_from_slice(&[0; 6]);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload(), &[9, 8, 7, 6]);
        let r = Ipv4Repr::parse(&p, RxChecksum::Verify).unwrap();
        assert_eq!(r.payload_len, 4);
        assert_eq!(r.protocol, IpProtocol::Udp);
    }

    #[test]
    fn fragments_are_refused() {
        for (flags_off, what) in
            [(0x2000u16, "first fragment (MF)"), (0x0010, "later fragment"), (0x0001, "last fragment")]
        {
            let mut b = sample();
            b[6..8].copy_from_slice(&flags_off.to_be_bytes());
            b[10..12].copy_from_slice(&[0, 0]);
            let c = checksum::checksum(&b[..20]);
            b[10..12].copy_from_slice(&c.to_be_bytes());
            let p = Ipv4Packet::new_checked(&b[..]).unwrap();
            assert!(p.is_fragment(), "{what}");
            assert_eq!(Ipv4Repr::parse(&p, RxChecksum::Verify), Err(Error::Fragmented), "{what}");
        }
    }

    #[test]
    fn ttl_update_keeps_checksum_valid() {
        let mut b = sample();
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.set_ttl_incremental(63);
        assert!(p.verify_checksum());
        assert_eq!(p.ttl(), 63);
    }

    proptest! {
        #[test]
        fn round_trip(repr in arb_repr(1500)) {
            let mut buf = vec![0u8; repr.buffer_len() + repr.payload_len];
            repr.emit(&mut buf).unwrap();
            let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Ipv4Repr::parse(&p, RxChecksum::Verify).unwrap(), repr);
            prop_assert_eq!(p.payload().len(), repr.payload_len);
        }

        #[test]
        fn parse_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Ipv4Packet::new_checked(&bytes[..]) {
                let _ = Ipv4Repr::parse(&p, RxChecksum::Verify);
                let _ = p.payload();
            }
            let _ = Ipv4Repr::parse_quoted(&bytes);
        }

        #[test]
        fn parse_arbitrary_headers_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 20..80)) {
            // Make arbitrary bytes look like IPv4 so the deeper checks run too.
            bytes[0] = 0x40 | (bytes[0] & 0x0f);
            if let Ok(p) = Ipv4Packet::new_checked(&bytes[..]) {
                let _ = Ipv4Repr::parse(&p, RxChecksum::Verify);
                let _ = p.payload();
            }
        }
    }
}
