//! ICMPv6 (RFC 4443): echo request/reply and the four error messages (destination
//! unreachable, packet too big, time exceeded, parameter problem). Neighbour discovery
//! (RFC 4861, types 133–137) is not parsed here: `Icmpv6Repr::parse` refuses it as
//! [`Error::Unsupported`] and the frame parser hands it to [`super::ndp`].
//!
//! * The checksum covers the IPv6 pseudo-header (RFC 4443 §2.3, RFC 8200 §8.1), so parsing
//!   and emitting take the addresses.
//! * An error message quotes "as much of the invoking packet as possible" (§2.4 (c)); the
//!   quote is kept as bytes, starting with the invoking packet's IPv6 header, for the stack to
//!   find the connection it names.
//! * Unknown types: errors (type < 128) are `Unsupported` and must be passed up, informational
//!   ones (≥ 128) silently discarded (§2.4 (a)-(b)); both come back as `Unsupported` here and
//!   the stack counts them.

use super::checksum;
use super::ipv6::pseudo_header_v6;
use super::{be16, put16, Error, Result, RxChecksum};
use core::net::Ipv6Addr;

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const REST: usize = 4; // ident/seq, MTU, pointer, or unused
    pub const DATA: usize = 8;
}

/// Length of the ICMPv6 header (type, code, checksum, and the 4 type-specific bytes).
pub const HEADER_LEN: usize = field::DATA;

/// Next Header value of ICMPv6.
pub const NEXT_HEADER: u8 = 58;

const TYPE_DST_UNREACHABLE: u8 = 1;
const TYPE_PACKET_TOO_BIG: u8 = 2;
const TYPE_TIME_EXCEEDED: u8 = 3;
const TYPE_PARAM_PROBLEM: u8 = 4;
const TYPE_ECHO_REQUEST: u8 = 128;
const TYPE_ECHO_REPLY: u8 = 129;

/// What an ICMPv6 error's invoking packet says of the TCP segment it quotes: the addresses,
/// ports and sequence number of a segment *we* sent (source = ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedTcp {
    /// Source address of the quoted packet (ours).
    pub src: Ipv6Addr,
    /// Destination address of the quoted packet (the peer's).
    pub dst: Ipv6Addr,
    /// TCP source port of the quoted segment (ours).
    pub src_port: u16,
    /// TCP destination port of the quoted segment (the peer's).
    pub dst_port: u16,
    /// Sequence number of the quoted segment.
    pub seq: u32,
}

/// The TCP segment an invoking packet (RFC 4443 §2.4(c): cut to fit the minimum MTU) quotes:
/// its IPv6 header read as far as it goes, not checked against its length, and a TCP header
/// right after it (what a stack without extension headers sends); `None` otherwise.
pub fn quoted_tcp(invoking: &[u8]) -> Option<QuotedTcp> {
    let addr = |at: usize| -> Option<Ipv6Addr> {
        let a: [u8; 16] = invoking.get(at..at + 16)?.try_into().ok()?;
        Some(Ipv6Addr::from(a))
    };
    if invoking.first()? >> 4 != 6 || *invoking.get(6)? != 6 {
        return None; // not IPv6, or not straight to TCP
    }
    let t = invoking.get(super::ipv6::HEADER_LEN..super::ipv6::HEADER_LEN + 8)?;
    Some(QuotedTcp {
        src: addr(8)?,
        dst: addr(24)?,
        src_port: u16::from_be_bytes([t[0], t[1]]),
        dst_port: u16::from_be_bytes([t[2], t[3]]),
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
    })
}

/// Whether an ICMPv6 message type is neighbour discovery's (RFC 4861 §4: router
/// solicitation and advertisement, neighbour solicitation and advertisement, redirect),
/// which [`crate::wire::NdpRepr`] parses.
pub fn is_ndp(msg_type: u8) -> bool {
    (133..=137).contains(&msg_type)
}

/// A view of an ICMPv6 message.
#[derive(Debug, Clone)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wrap a buffer without checking it. Accessors may panic if it is shorter than the 8-byte
    /// header.
    pub fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }
    /// Wrap untrusted bytes: at least the 8-byte header. After this no accessor panics.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        if p.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(p)
    }
    /// The type field (byte 0).
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    /// The code field (byte 1).
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    /// The checksum field as it is on the wire.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// The four type-specific bytes after the checksum, as one number.
    pub fn rest(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[4], b[5], b[6], b[7]])
    }
    /// The message body after the 8-byte header: echo data, or the invoking packet of an error.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }
    /// RFC 4443 §2.3: the message and the pseudo-header sum to all ones.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        let Ok(len) = u32::try_from(b.len()) else { return false };
        checksum::combine(&[pseudo_header_v6(src, dst, NEXT_HEADER, len), checksum::sum(b)]) == 0xffff
    }
}

/// The meaning of the ICMPv6 messages handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv6Repr<'a> {
    /// Type 128: echo request (RFC 4443 §4.1).
    EchoRequest {
        /// Identifier, echoed in the reply.
        ident: u16,
        /// Sequence number, echoed in the reply.
        seq_no: u16,
        /// Data, echoed in the reply.
        data: &'a [u8],
    },
    /// Type 129: echo reply (RFC 4443 §4.2).
    EchoReply {
        /// Identifier of the request this answers.
        ident: u16,
        /// Sequence number of the request this answers.
        seq_no: u16,
        /// Data of the request this answers.
        data: &'a [u8],
    },
    /// §3.1: codes 0–6 (no route, administratively prohibited, beyond scope, address
    /// unreachable, port unreachable, source policy, reject route).
    DstUnreachable {
        /// The code (0–6 above; others are carried as read).
        code: u8,
        /// As much of the invoking packet as was quoted, from its IPv6 header on.
        invoking: &'a [u8],
    },
    /// §3.2: the MTU of the next link (RFC 8201 lowers the path MTU with it).
    PacketTooBig {
        /// The MTU of the next-hop link, in bytes.
        mtu: u32,
        /// As much of the invoking packet as was quoted, from its IPv6 header on.
        invoking: &'a [u8],
    },
    /// §3.3: hop limit exceeded (0) or fragment reassembly time exceeded (1).
    TimeExceeded {
        /// The code: 0 hop limit exceeded, 1 fragment reassembly time exceeded.
        code: u8,
        /// As much of the invoking packet as was quoted, from its IPv6 header on.
        invoking: &'a [u8],
    },
    /// §3.4: the offset in the invoking packet where the problem was found.
    ParamProblem {
        /// The code: 0 erroneous header field, 1 unrecognised Next Header, 2 unrecognised IPv6
        /// option; others are carried as read.
        code: u8,
        /// Byte offset in the invoking packet where the problem was found.
        pointer: u32,
        /// As much of the invoking packet as was quoted, from its IPv6 header on.
        invoking: &'a [u8],
    },
}

impl<'a> Icmpv6Repr<'a> {
    /// Parse a checked message from `src` to `dst`. `Verify` checks the checksum.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        p: &Icmpv6Packet<&'a T>,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        rx: RxChecksum,
    ) -> Result<Icmpv6Repr<'a>> {
        if rx.verify_l4() && !p.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        let data: &'a [u8] = &p.buffer.as_ref()[field::DATA..];
        let rest = p.rest();
        let (ident, seq_no) = ((rest >> 16) as u16, rest as u16);
        match (p.msg_type(), p.msg_code()) {
            (TYPE_ECHO_REQUEST, 0) => Ok(Icmpv6Repr::EchoRequest { ident, seq_no, data }),
            (TYPE_ECHO_REPLY, 0) => Ok(Icmpv6Repr::EchoReply { ident, seq_no, data }),
            (TYPE_ECHO_REQUEST | TYPE_ECHO_REPLY, _) => Err(Error::Malformed),
            (TYPE_DST_UNREACHABLE, code) => Ok(Icmpv6Repr::DstUnreachable { code, invoking: data }),
            (TYPE_PACKET_TOO_BIG, 0) => Ok(Icmpv6Repr::PacketTooBig { mtu: rest, invoking: data }),
            (TYPE_PACKET_TOO_BIG, _) => Err(Error::Malformed),
            (TYPE_TIME_EXCEEDED, code) => Ok(Icmpv6Repr::TimeExceeded { code, invoking: data }),
            (TYPE_PARAM_PROBLEM, code) => Ok(Icmpv6Repr::ParamProblem { code, pointer: rest, invoking: data }),
            _ => Err(Error::Unsupported),
        }
    }

    fn parts(&self) -> (u8, u8, u32, &'a [u8]) {
        match *self {
            Icmpv6Repr::EchoRequest { ident, seq_no, data } => {
                (TYPE_ECHO_REQUEST, 0, (u32::from(ident) << 16) | u32::from(seq_no), data)
            }
            Icmpv6Repr::EchoReply { ident, seq_no, data } => {
                (TYPE_ECHO_REPLY, 0, (u32::from(ident) << 16) | u32::from(seq_no), data)
            }
            Icmpv6Repr::DstUnreachable { code, invoking } => (TYPE_DST_UNREACHABLE, code, 0, invoking),
            Icmpv6Repr::PacketTooBig { mtu, invoking } => (TYPE_PACKET_TOO_BIG, 0, mtu, invoking),
            Icmpv6Repr::TimeExceeded { code, invoking } => (TYPE_TIME_EXCEEDED, code, 0, invoking),
            Icmpv6Repr::ParamProblem { code, pointer, invoking } => (TYPE_PARAM_PROBLEM, code, pointer, invoking),
        }
    }

    /// Length of the whole message on the wire: the 8-byte header and the body.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.parts().3.len()
    }

    /// Write the message, with its checksum over the pseudo-header of `src` → `dst`.
    pub fn emit(&self, buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<usize> {
        let (ty, code, rest, data) = self.parts();
        let len = HEADER_LEN + data.len();
        if buf.len() < len {
            return Err(Error::BufferTooSmall);
        }
        let len32 = u32::try_from(len).map_err(|_| Error::Malformed)?;
        let b = &mut buf[..len];
        b[field::TYPE] = ty;
        b[field::CODE] = code;
        put16(b, field::CHECKSUM, 0);
        b[field::REST..field::DATA].copy_from_slice(&rest.to_be_bytes());
        b[field::DATA..].copy_from_slice(data);
        let c =
            checksum::finish(checksum::combine(&[pseudo_header_v6(src, dst, NEXT_HEADER, len32), checksum::sum(b)]));
        put16(b, field::CHECKSUM, c);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_quoted_tcp_segment_is_read_from_a_cut_short_invoking_packet() {
        let (src, dst) = (Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1), Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2));
        let ip = crate::wire::Ipv6Repr {
            src,
            dst,
            next_header: crate::wire::IpProtocol::Tcp,
            payload_len: 1400, // more than is quoted: the packet was cut
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        };
        let mut b = vec![0u8; 48];
        ip.emit(&mut b).unwrap();
        b[40..48].copy_from_slice(&[0x9c, 0x40, 0x00, 0x50, 0xde, 0xad, 0xbe, 0xef]);
        let q = quoted_tcp(&b).expect("a TCP segment");
        assert_eq!((q.src, q.dst, q.src_port, q.dst_port, q.seq), (src, dst, 40000, 80, 0xdead_beef));
        // Too short for the ports and sequence number; not straight to TCP; not IPv6.
        assert_eq!(quoted_tcp(&b[..47]), None);
        let mut ext = b.clone();
        ext[6] = 0; // a hop-by-hop header first
        assert_eq!(quoted_tcp(&ext), None);
        let mut v4 = b.clone();
        v4[0] = 0x45;
        assert_eq!(quoted_tcp(&v4), None);
    }

    const A: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
    const B: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

    fn round_trip(r: Icmpv6Repr<'_>) {
        let mut b = vec![0u8; r.buffer_len()];
        assert_eq!(r.emit(&mut b, A, B), Ok(b.len()));
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(A, B));
        assert!(!p.verify_checksum(B, B), "the pseudo-header's addresses count");
        assert_eq!(Icmpv6Repr::parse(&p, A, B, RxChecksum::Verify), Ok(r));
    }

    #[test]
    fn every_message_round_trips() {
        let quote = [0x60u8, 0, 0, 0, 0, 20, 6, 64];
        round_trip(Icmpv6Repr::EchoRequest { ident: 7, seq_no: 9, data: b"ping6" });
        round_trip(Icmpv6Repr::EchoReply { ident: 7, seq_no: 9, data: b"" });
        round_trip(Icmpv6Repr::DstUnreachable { code: 4, invoking: &quote });
        round_trip(Icmpv6Repr::PacketTooBig { mtu: 1280, invoking: &quote });
        round_trip(Icmpv6Repr::TimeExceeded { code: 0, invoking: &quote });
        round_trip(Icmpv6Repr::ParamProblem { code: 1, pointer: 40, invoking: &quote });
    }

    /// An echo request as Linux's ping -6 sends it (type 128, code 0), checksum included.
    #[test]
    fn a_known_echo_request_checks() {
        let r = Icmpv6Repr::EchoRequest { ident: 0x1234, seq_no: 1, data: &[0xab; 8] };
        let mut b = [0u8; 16];
        r.emit(&mut b, A, B).unwrap();
        assert_eq!(&b[..2], &[128, 0]);
        assert_eq!(&b[4..8], &[0x12, 0x34, 0, 1]);
        // Recompute by hand: pseudo-header words + message words, folded, complemented.
        let mut words: Vec<u8> = Vec::new();
        words.extend_from_slice(&A.octets());
        words.extend_from_slice(&B.octets());
        words.extend_from_slice(&16u32.to_be_bytes());
        words.extend_from_slice(&[0, 0, 0, 58]);
        let mut m = b;
        m[2] = 0;
        m[3] = 0;
        words.extend_from_slice(&m);
        assert_eq!(u16::from_be_bytes([b[2], b[3]]), checksum::sum_reference(&words) ^ 0xffff);
    }

    #[test]
    fn bad_checksums_and_odd_messages_are_refused() {
        let mut b = [0u8; 12];
        Icmpv6Repr::EchoRequest { ident: 1, seq_no: 2, data: b"abcd" }.emit(&mut b, A, B).unwrap();
        b[9] ^= 1;
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Icmpv6Repr::parse(&p, A, B, RxChecksum::Verify), Err(Error::BadChecksum));
        assert!(Icmpv6Repr::parse(&p, A, B, RxChecksum::TrustL4).is_ok());
        let nd = [135u8, 0, 0, 0, 0, 0, 0, 0];
        let p = Icmpv6Packet::new_checked(&nd[..]).unwrap();
        assert_eq!(Icmpv6Repr::parse(&p, A, B, RxChecksum::TrustL4), Err(Error::Unsupported), "NDP: wire::ndp's");
        let echo_code_1 = [128u8, 1, 0, 0, 0, 0, 0, 0];
        let p = Icmpv6Packet::new_checked(&echo_code_1[..]).unwrap();
        assert_eq!(Icmpv6Repr::parse(&p, A, B, RxChecksum::TrustL4), Err(Error::Malformed));
        assert_eq!(Icmpv6Packet::new_checked(&[128u8; 7][..]).err(), Some(Error::Truncated));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Ok(p) = Icmpv6Packet::new_checked(&b[..]) {
                let _ = Icmpv6Repr::parse(&p, A, B, RxChecksum::Verify);
                if let Ok(r) = Icmpv6Repr::parse(&p, A, B, RxChecksum::TrustL4) {
                    let mut out = vec![0u8; r.buffer_len()];
                    r.emit(&mut out, A, B).unwrap();
                    let q = Icmpv6Packet::new_checked(&out[..]).unwrap();
                    prop_assert_eq!(Icmpv6Repr::parse(&q, A, B, RxChecksum::Verify), Ok(r));
                }
            }
        }
    }
}
