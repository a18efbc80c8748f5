//! ICMPv4 (RFC 792), the messages a host needs: echo request/reply, destination unreachable
//! (including "fragmentation needed" with the next-hop MTU of RFC 1191 §4), and time
//! exceeded. Other types are [`Error::Unsupported`].
//!
//! Error messages quote the IP header and at least the first 8 bytes of the datagram that
//! caused them (RFC 792; RFC 1812 §4.3.2.3 allows more). The quoted header is parsed with
//! [`Ipv4Repr::parse_quoted`] so that the stack can find the connection the error is about.

use super::checksum;
use super::ipv4::{Ipv4Repr, HEADER_LEN as IPV4_HEADER_LEN};
use super::{be16, put16, Error, Result, RxChecksum};

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const REST: usize = 4; // ident/seq, unused, or the next-hop MTU
    pub const DATA: usize = 8;
}

/// Length of the ICMP header (type, code, checksum and the 4 type-specific bytes).
pub const HEADER_LEN: usize = field::DATA;

const TYPE_ECHO_REPLY: u8 = 0;
const TYPE_DST_UNREACHABLE: u8 = 3;
const TYPE_ECHO_REQUEST: u8 = 8;
const TYPE_TIME_EXCEEDED: u8 = 11;

/// Destination-unreachable codes (RFC 792, RFC 1122 §3.2.2.1, RFC 1812 §5.2.7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DstUnreachable {
    /// Code 0: net unreachable.
    NetUnreachable,
    /// Code 1: host unreachable.
    HostUnreachable,
    /// Code 2: protocol unreachable.
    ProtoUnreachable,
    /// Code 3: port unreachable.
    PortUnreachable,
    /// Fragmentation needed and DF set; carries the next-hop MTU (RFC 1191).
    FragRequired,
    /// Code 5: source route failed.
    SrcRouteFailed,
    /// Codes 6..=15 (administratively prohibited and the like) and anything newer.
    Other(u8),
}

impl From<u8> for DstUnreachable {
    fn from(c: u8) -> Self {
        match c {
            0 => Self::NetUnreachable,
            1 => Self::HostUnreachable,
            2 => Self::ProtoUnreachable,
            3 => Self::PortUnreachable,
            4 => Self::FragRequired,
            5 => Self::SrcRouteFailed,
            other => Self::Other(other),
        }
    }
}

impl From<DstUnreachable> for u8 {
    fn from(c: DstUnreachable) -> u8 {
        match c {
            DstUnreachable::NetUnreachable => 0,
            DstUnreachable::HostUnreachable => 1,
            DstUnreachable::ProtoUnreachable => 2,
            DstUnreachable::PortUnreachable => 3,
            DstUnreachable::FragRequired => 4,
            DstUnreachable::SrcRouteFailed => 5,
            DstUnreachable::Other(v) => v,
        }
    }
}

/// Time-exceeded codes (RFC 792).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeExceeded {
    /// Code 0: time to live exceeded in transit.
    TtlExpired,
    /// Code 1: fragment reassembly time exceeded.
    FragReassembly,
    /// Any other code, carried as read.
    Other(u8),
}

impl From<u8> for TimeExceeded {
    fn from(c: u8) -> Self {
        match c {
            0 => Self::TtlExpired,
            1 => Self::FragReassembly,
            other => Self::Other(other),
        }
    }
}

impl From<TimeExceeded> for u8 {
    fn from(c: TimeExceeded) -> u8 {
        match c {
            TimeExceeded::TtlExpired => 0,
            TimeExceeded::FragReassembly => 1,
            TimeExceeded::Other(v) => v,
        }
    }
}

/// A view of an ICMPv4 message.
#[derive(Debug, Clone)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wrap a buffer without checking it. Accessors may panic if it is shorter than the 8-byte
    /// header.
    pub fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }
    /// Wrap untrusted bytes: after this succeeds, no accessor panics.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Check that the buffer holds at least the 8-byte header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
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
    /// The identifier of an echo request or reply (bytes 4..6).
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::REST)
    }
    /// The sequence number of an echo request or reply (bytes 6..8).
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), field::REST + 2)
    }
    /// RFC 1191 §4: the low 16 bits of the "unused" word of a fragmentation-needed message.
    pub fn next_hop_mtu(&self) -> u16 {
        be16(self.buffer.as_ref(), field::REST + 2)
    }
    /// The bytes after the 8-byte header: echo data, or the quoted datagram of an error.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }
    /// Whether the checksum over the whole message (header and data) is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(self.buffer.as_ref()) == 0xffff
    }
}

/// The meaning of the ICMPv4 messages the stack handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv4Repr<'a> {
    /// Type 8: echo request.
    EchoRequest {
        /// Identifier, echoed in the reply.
        ident: u16,
        /// Sequence number, echoed in the reply.
        seq_no: u16,
        /// Data, echoed in the reply.
        data: &'a [u8],
    },
    /// Type 0: echo reply.
    EchoReply {
        /// Identifier of the request this answers.
        ident: u16,
        /// Sequence number of the request this answers.
        seq_no: u16,
        /// Data of the request this answers.
        data: &'a [u8],
    },
    /// Type 3: destination unreachable.
    DstUnreachable {
        /// Why the destination is unreachable (the code).
        reason: DstUnreachable,
        /// Meaningful for [`DstUnreachable::FragRequired`]; zero otherwise.
        next_hop_mtu: u16,
        /// The quoted header of the datagram that caused the error.
        header: Ipv4Repr,
        /// The quoted start of that datagram's payload (at least the ports of TCP/UDP).
        data: &'a [u8],
    },
    /// Type 11: time exceeded.
    TimeExceeded {
        /// Which time ran out (the code).
        reason: TimeExceeded,
        /// The quoted header of the datagram that caused the error.
        header: Ipv4Repr,
        /// The quoted start of that datagram's payload (at least the ports of TCP/UDP).
        data: &'a [u8],
    },
}

impl<'a> Icmpv4Repr<'a> {
    /// Parse a checked message. `Verify` checks the checksum over the whole message.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &Icmpv4Packet<&'a T>, rx: RxChecksum) -> Result<Icmpv4Repr<'a>> {
        p.check_len()?;
        if rx.verify_l4() && !p.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        let data: &'a [u8] = &p.buffer.as_ref()[field::DATA..];
        match (p.msg_type(), p.msg_code()) {
            (TYPE_ECHO_REQUEST, 0) => {
                Ok(Icmpv4Repr::EchoRequest { ident: p.echo_ident(), seq_no: p.echo_seq_no(), data })
            }
            (TYPE_ECHO_REPLY, 0) => Ok(Icmpv4Repr::EchoReply { ident: p.echo_ident(), seq_no: p.echo_seq_no(), data }),
            (TYPE_DST_UNREACHABLE, code) => {
                let (header, quoted) = Ipv4Repr::parse_quoted(data)?;
                let reason = DstUnreachable::from(code);
                let next_hop_mtu = if reason == DstUnreachable::FragRequired { p.next_hop_mtu() } else { 0 };
                Ok(Icmpv4Repr::DstUnreachable { reason, next_hop_mtu, header, data: quoted })
            }
            (TYPE_TIME_EXCEEDED, code) => {
                let (header, quoted) = Ipv4Repr::parse_quoted(data)?;
                Ok(Icmpv4Repr::TimeExceeded { reason: TimeExceeded::from(code), header, data: quoted })
            }
            (TYPE_ECHO_REQUEST | TYPE_ECHO_REPLY, _) => Err(Error::Malformed),
            _ => Err(Error::Unsupported),
        }
    }

    /// Length of the whole message on the wire: the 8-byte header, then the data (echo), or a
    /// 20-byte quoted IPv4 header and the quoted payload (errors).
    pub fn buffer_len(&self) -> usize {
        match self {
            Icmpv4Repr::EchoRequest { data, .. } | Icmpv4Repr::EchoReply { data, .. } => HEADER_LEN + data.len(),
            Icmpv4Repr::DstUnreachable { data, .. } | Icmpv4Repr::TimeExceeded { data, .. } => {
                HEADER_LEN + IPV4_HEADER_LEN + data.len()
            }
        }
    }

    /// Write the whole message, checksum included, into the front of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        if buf.len() < len {
            return Err(Error::BufferTooSmall);
        }
        let buf = &mut buf[..len];
        let (ty, code, rest) = match *self {
            Icmpv4Repr::EchoRequest { ident, seq_no, .. } => {
                (TYPE_ECHO_REQUEST, 0, (ident as u32) << 16 | seq_no as u32)
            }
            Icmpv4Repr::EchoReply { ident, seq_no, .. } => (TYPE_ECHO_REPLY, 0, (ident as u32) << 16 | seq_no as u32),
            Icmpv4Repr::DstUnreachable { reason, next_hop_mtu, .. } => {
                let mtu = if reason == DstUnreachable::FragRequired { next_hop_mtu } else { 0 };
                (TYPE_DST_UNREACHABLE, reason.into(), mtu as u32)
            }
            Icmpv4Repr::TimeExceeded { reason, .. } => (TYPE_TIME_EXCEEDED, reason.into(), 0),
        };
        buf[field::TYPE] = ty;
        buf[field::CODE] = code;
        put16(buf, field::CHECKSUM, 0);
        buf[field::REST..field::DATA].copy_from_slice(&rest.to_be_bytes());
        match *self {
            Icmpv4Repr::EchoRequest { data, .. } | Icmpv4Repr::EchoReply { data, .. } => {
                buf[field::DATA..].copy_from_slice(data);
            }
            Icmpv4Repr::DstUnreachable { header, data, .. } | Icmpv4Repr::TimeExceeded { header, data, .. } => {
                header.emit(&mut buf[field::DATA..])?;
                buf[field::DATA + IPV4_HEADER_LEN..].copy_from_slice(data);
            }
        }
        let c = checksum::checksum(buf);
        put16(buf, field::CHECKSUM, c);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::tests::arb_repr as arb_ipv4;
    use proptest::prelude::*;

    /// Build a message of kind `kind % 4` from generated fields; `data` is borrowed.
    fn make(kind: u8, a: u16, b: u16, code: u8, header: Ipv4Repr, data: &[u8]) -> Icmpv4Repr<'_> {
        match kind % 4 {
            0 => Icmpv4Repr::EchoRequest { ident: a, seq_no: b, data },
            1 => Icmpv4Repr::EchoReply { ident: a, seq_no: b, data },
            2 => {
                let reason = DstUnreachable::from(code);
                let next_hop_mtu = if reason == DstUnreachable::FragRequired { a } else { 0 };
                Icmpv4Repr::DstUnreachable { reason, next_hop_mtu, header, data }
            }
            _ => Icmpv4Repr::TimeExceeded { reason: TimeExceeded::from(code), header, data },
        }
    }

    #[test]
    fn bad_checksum_and_unknown_types() {
        let r = Icmpv4Repr::EchoRequest { ident: 1, seq_no: 2, data: b"ping" };
        let mut buf = [0u8; 12];
        r.emit(&mut buf).unwrap();
        let mut b = buf;
        b[9] ^= 0xff;
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p, RxChecksum::Verify), Err(Error::BadChecksum));
        assert!(Icmpv4Repr::parse(&p, RxChecksum::TrustL4).is_ok());
        let mut b = buf;
        b[0] = 13; // timestamp request
        b[2..4].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&b);
        b[2..4].copy_from_slice(&c.to_be_bytes());
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p, RxChecksum::Verify), Err(Error::Unsupported));
        // An error message whose quoted header is cut short.
        let mut b = [0u8; 20];
        b[0] = TYPE_DST_UNREACHABLE;
        b[8] = 0x45;
        let c = checksum::checksum(&b);
        b[2..4].copy_from_slice(&c.to_be_bytes());
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p, RxChecksum::Verify), Err(Error::Truncated));
    }

    proptest! {
        #[test]
        fn round_trip(kind in any::<u8>(), a in any::<u16>(), b in any::<u16>(), code in any::<u8>(),
                      header in arb_ipv4(600), data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let repr = make(kind, a, b, code, header, &data);
            let mut buf = vec![0u8; repr.buffer_len()];
            prop_assert_eq!(repr.emit(&mut buf).unwrap(), buf.len());
            let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Icmpv4Repr::parse(&p, RxChecksum::Verify).unwrap(), repr);
        }

        #[test]
        fn parse_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Icmpv4Packet::new_checked(&bytes[..]) {
                let _ = Icmpv4Repr::parse(&p, RxChecksum::TrustL4);
            }
        }
    }
}
