//! IPv6 (RFC 8200).
//!
//! * The fixed 40-byte header, then a chain of extension headers. Hop-by-Hop Options (which
//!   must come first, §4.1), Routing and Destination Options are skipped by their length
//!   (their contents are not interpreted: a host may ignore options whose type says "skip",
//!   and we act on none); a Fragment header is recognised and refused with
//!   [`Error::Fragmented`] until reassembly exists. A chain that overruns the payload, a
//!   Hop-by-Hop header anywhere but first, or more than [`MAX_EXTENSION_HEADERS`] headers is
//!   [`Error::Malformed`]: a walk over untrusted bytes is bounded and never panics.
//! * Ethernet padding after the payload length is trimmed from the payload; a jumbogram
//!   (payload length 0 with a Jumbo Payload option, RFC 2675) is refused.
//! * Emitted headers are always the 40 fixed bytes, with no extension headers.
//! * IPv6 has no header checksum; upper layers checksum a pseudo-header (§8.1,
//!   [`pseudo_header_v6`]).

use super::checksum;
use super::{be16, put16, Error, IpProtocol, Result};
use core::net::Ipv6Addr;

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const LENGTH: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

/// Most extension headers walked before the chain is taken as malformed (a real packet has a
/// handful; RFC 8200 §4.1 recommends each appear at most once or twice).
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// Next Header values of the extension headers (RFC 8200 §4, IANA).
const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const DEST_OPTIONS: u8 = 60;
/// "No Next Header" (§4.7): nothing follows.
const NO_NEXT_HEADER: u8 = 59;

fn ipv6_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(a)
}

/// A view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wrap a buffer without checking it. Accessors may panic if it is shorter than the fixed header
    /// or its payload length points past the end.
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wrap untrusted bytes. Checks that the buffer holds the fixed header, that the version
    /// is 6, and that the payload length fits inside the buffer. After this, no accessor
    /// panics (the extension-header walk checks its own bounds).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The checks of [`Self::new_checked`]: the 40-byte fixed header, version 6, and the payload
    /// length within the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::Malformed);
        }
        if len < HEADER_LEN + self.payload_len() as usize {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Unwrap the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// The version field (6 for a valid packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }
    /// Traffic Class (§7): DSCP (6 bits) and ECN (2 bits), as IPv4's TOS byte.
    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }
    /// The 20-bit Flow Label (§6, RFC 6437).
    pub fn flow_label(&self) -> u32 {
        let b = self.buffer.as_ref();
        (u32::from(b[1] & 0x0f) << 16) | (u32::from(b[2]) << 8) | u32::from(b[3])
    }
    /// Bytes after the fixed header, extension headers included.
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    /// The header after the fixed one (an extension header or the upper layer).
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }
    /// The hop limit field.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }
    /// The source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        ipv6_at(self.buffer.as_ref(), field::SRC)
    }
    /// The destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        ipv6_at(self.buffer.as_ref(), field::DST)
    }
    /// Everything after the fixed header, up to the payload length (padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + self.payload_len() as usize]
    }

    /// Walk the extension headers (§4): the upper-layer protocol and the offset of its
    /// header within [`Ipv6Packet::payload`].
    pub fn upper_layer(&self) -> Result<(IpProtocol, usize)> {
        let payload = self.payload();
        let mut next = self.next_header();
        let mut at = 0usize;
        for i in 0..=MAX_EXTENSION_HEADERS {
            match next {
                HOP_BY_HOP if i > 0 => return Err(Error::Malformed), // §4.3: only first
                HOP_BY_HOP | ROUTING | DEST_OPTIONS => {
                    // §4.3-4.6: Next Header, Hdr Ext Len (8-octet units after the first 8).
                    let hdr = payload.get(at..at + 2).ok_or(Error::Malformed)?;
                    if hdr[0] == HOP_BY_HOP {
                        return Err(Error::Malformed);
                    }
                    let len = 8 + 8 * usize::from(hdr[1]);
                    if at + len > payload.len() {
                        return Err(Error::Malformed);
                    }
                    if next == HOP_BY_HOP && jumbo_option(&payload[at + 2..at + len]) {
                        return Err(Error::Unsupported); // RFC 2675 jumbogram
                    }
                    next = hdr[0];
                    at += len;
                }
                // §4.5: a fragment (even an atomic one, RFC 6946, whose offset is 0 and M clear,
                // is refused for now: no reassembly yet, and nothing legitimate needs it here).
                FRAGMENT => return Err(Error::Fragmented),
                NO_NEXT_HEADER => return Err(Error::Unsupported),
                upper => return Ok((IpProtocol::from(upper), at)),
            }
        }
        Err(Error::Malformed)
    }
}

/// Does a Hop-by-Hop options area hold a Jumbo Payload option (type 0xC2)? Walks the TLVs
/// (RFC 8200 §4.2: Pad1 is a lone zero byte, every other option type-length-value).
fn jumbo_option(mut opts: &[u8]) -> bool {
    while let Some(&t) = opts.first() {
        if t == 0 {
            opts = &opts[1..];
            continue;
        }
        let Some(&len) = opts.get(1) else { return false };
        if t == 0xc2 {
            return true;
        }
        opts = opts.get(2 + usize::from(len)..).unwrap_or(&[]);
    }
    false
}

/// The meaning of an IPv6 header: the fixed fields, and what the extension-header walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// The upper-layer protocol, after any extension headers.
    pub next_header: IpProtocol,
    /// Length of the upper-layer packet (after any extension headers).
    pub payload_len: usize,
    /// Hop limit (hops).
    pub hop_limit: u8,
    /// DSCP and ECN.
    pub traffic_class: u8,
    /// The 20-bit Flow Label (§6, RFC 6437); 0 when unset.
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Parse a checked packet: the fixed header and the extension-header chain. Returns the
    /// representation and the offset of the upper-layer header within the payload.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Result<(Ipv6Repr, usize)> {
        p.check_len()?;
        if p.payload_len() == 0 && p.next_header() == HOP_BY_HOP {
            return Err(Error::Unsupported); // a jumbogram's payload length is 0 (RFC 2675)
        }
        let (next_header, at) = p.upper_layer()?;
        let repr = Ipv6Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            next_header,
            payload_len: p.payload_len() as usize - at,
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        };
        Ok((repr, at))
    }

    /// Length of the header on the wire: always [`HEADER_LEN`] (40 bytes; no extension headers are
    /// emitted).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the 40-byte header into the front of `buf` (no extension headers). The payload
    /// is the caller's, after it. `payload_len` must fit in 16 bits and the flow label in 20.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < HEADER_LEN {
            return Err(Error::BufferTooSmall);
        }
        if self.payload_len > usize::from(u16::MAX) || self.flow_label >= 1 << 20 {
            return Err(Error::Malformed);
        }
        let word = (6u32 << 28) | (u32::from(self.traffic_class) << 20) | self.flow_label;
        buf[..4].copy_from_slice(&word.to_be_bytes());
        put16(buf, field::LENGTH, self.payload_len as u16);
        buf[field::NEXT_HEADER] = self.next_header.into();
        buf[field::HOP_LIMIT] = self.hop_limit;
        buf[field::SRC..field::SRC + 16].copy_from_slice(&self.src.octets());
        buf[field::DST..field::DST + 16].copy_from_slice(&self.dst.octets());
        Ok(HEADER_LEN)
    }
}

/// Partial sum of the IPv6 pseudo-header (RFC 8200 §8.1): source, destination, the
/// upper-layer packet length (32 bits), three zero bytes and the Next Header value.
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u16 {
    let mut words = [0u8; 40];
    words[..16].copy_from_slice(&src.octets());
    words[16..32].copy_from_slice(&dst.octets());
    words[32..36].copy_from_slice(&length.to_be_bytes());
    words[39] = next_header;
    checksum::sum(&words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
    const B: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

    fn repr(payload_len: usize) -> Ipv6Repr {
        Ipv6Repr {
            src: A,
            dst: B,
            next_header: IpProtocol::Tcp,
            payload_len,
            hop_limit: 64,
            traffic_class: 0b1010_1110,
            flow_label: 0x5_4321,
        }
    }

    /// A packet whose payload starts with `ext` (extension headers) and then `upper` bytes.
    fn packet(first: u8, ext: &[u8], upper: usize) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN + ext.len() + upper];
        let r = Ipv6Repr { payload_len: ext.len() + upper, ..repr(0) };
        r.emit(&mut b).unwrap();
        b[field::NEXT_HEADER] = first;
        b[HEADER_LEN..HEADER_LEN + ext.len()].copy_from_slice(ext);
        b
    }

    #[test]
    fn fields_round_trip() {
        let mut b = vec![0u8; HEADER_LEN + 20];
        let r = repr(20);
        assert_eq!(r.emit(&mut b), Ok(HEADER_LEN));
        assert_eq!(&b[..4], &[0x6a, 0xe5, 0x43, 0x21], "version, traffic class, flow label");
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&p), Ok((r, 0)));
    }

    #[test]
    fn extension_headers_are_skipped_by_length() {
        // Hop-by-Hop (8 bytes, PadN) → Routing (16 bytes) → Destination Options (8) → TCP.
        let mut ext = vec![ROUTING, 0, 1, 4, 0, 0, 0, 0];
        ext.extend_from_slice(&[DEST_OPTIONS, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        ext.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
        let b = packet(HOP_BY_HOP, &ext, 20);
        let (r, at) = Ipv6Repr::parse(&Ipv6Packet::new_checked(&b[..]).unwrap()).unwrap();
        assert_eq!((r.next_header, at, r.payload_len), (IpProtocol::Tcp, 32, 20));
    }

    #[test]
    fn broken_chains_are_refused_not_panicked_on() {
        let parse = |b: &[u8]| Ipv6Repr::parse(&Ipv6Packet::new_checked(b).unwrap()).map(|r| r.1);
        // An extension header longer than the packet.
        assert_eq!(parse(&packet(DEST_OPTIONS, &[6, 9, 0, 0, 0, 0, 0, 0], 8)), Err(Error::Malformed));
        // Hop-by-Hop after another header (§4.1: only first).
        assert_eq!(
            parse(&packet(DEST_OPTIONS, &[HOP_BY_HOP, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0)),
            Err(Error::Malformed)
        );
        // A chain that never ends: Destination Options after Destination Options, nine times.
        let ext: Vec<u8> = (0..9).flat_map(|_| [DEST_OPTIONS, 0, 0, 0, 0, 0, 0, 0]).collect();
        assert_eq!(parse(&packet(DEST_OPTIONS, &ext, 0)), Err(Error::Malformed));
        // A fragment, and "no next header".
        assert_eq!(parse(&packet(FRAGMENT, &[6, 0, 0, 0, 0, 0, 0, 1], 20)), Err(Error::Fragmented));
        assert_eq!(parse(&packet(NO_NEXT_HEADER, &[], 0)), Err(Error::Unsupported));
        // A jumbogram.
        assert_eq!(parse(&packet(HOP_BY_HOP, &[6, 0, 0xc2, 4, 0, 1, 0, 0], 0)), Err(Error::Unsupported));
        // Truncated and wrong-version buffers.
        assert_eq!(Ipv6Packet::new_checked(&[0x60u8; 39][..]).err(), Some(Error::Truncated));
        let mut v4 = packet(6, &[], 0);
        v4[0] = 0x45;
        assert_eq!(Ipv6Packet::new_checked(&v4[..]).err(), Some(Error::Malformed));
        let mut long = packet(6, &[], 10);
        long[field::LENGTH + 1] = 11;
        assert_eq!(Ipv6Packet::new_checked(&long[..]).err(), Some(Error::Truncated));
    }

    #[test]
    fn padding_after_the_payload_is_trimmed() {
        let mut b = packet(6, &[], 20);
        b.extend_from_slice(&[0; 6]);
        assert_eq!(Ipv6Packet::new_checked(&b[..]).unwrap().payload().len(), 20);
    }

    #[test]
    fn the_pseudo_header_sums_as_rfc_8200_lays_it_out() {
        // A TCP segment checksummed over the pseudo-header sums to all ones with it.
        let mut seg = [0u8; 20];
        seg[12] = 0x50;
        let ph = pseudo_header_v6(A, B, 6, 20);
        let c = checksum::finish(checksum::combine(&[ph, checksum::sum(&seg)]));
        seg[16..18].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum::combine(&[ph, checksum::sum(&seg)]), 0xffff);
        // Each field counts: another address or length changes the sum.
        assert_ne!(pseudo_header_v6(B, A, 6, 21), ph);
    }

    fn arb_addr() -> impl Strategy<Value = Ipv6Addr> {
        any::<[u8; 16]>().prop_map(Ipv6Addr::from)
    }

    proptest! {
        #[test]
        fn every_repr_round_trips(src in arb_addr(), dst in arb_addr(), nh in any::<u8>(), len in 0usize..2000,
                                  hop in any::<u8>(), tc in any::<u8>(), flow in 0u32..(1 << 20)) {
            prop_assume!(![HOP_BY_HOP, ROUTING, FRAGMENT, DEST_OPTIONS, NO_NEXT_HEADER].contains(&nh));
            let r = Ipv6Repr { src, dst, next_header: IpProtocol::from(nh), payload_len: len, hop_limit: hop,
                               traffic_class: tc, flow_label: flow };
            let mut b = vec![0u8; HEADER_LEN + len];
            r.emit(&mut b).unwrap();
            prop_assert_eq!(Ipv6Repr::parse(&Ipv6Packet::new_checked(&b[..]).unwrap()), Ok((r, 0)));
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(p) = Ipv6Packet::new_checked(&b[..]) {
                let _ = Ipv6Repr::parse(&p);
                let _ = p.upper_layer();
            }
        }
    }
}
