//! ARP for IPv4 over Ethernet (RFC 826).
//!
//! Only hardware type 1 (Ethernet, 6-byte addresses) with protocol type 0x0800 (IPv4, 4-byte
//! addresses) is accepted; any other combination is [`Error::Unsupported`].

use super::{be16, put16, Error, MacAddr, Result};
use core::net::Ipv4Addr;

mod field {
    use core::ops::Range;
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

const HTYPE_ETHERNET: u16 = 1;
const PTYPE_IPV4: u16 = 0x0800;

/// The ARP operation (RFC 826 `ar$op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// Operation 1: request ("who has `target_ip`?").
    Request,
    /// Operation 2: reply ("`source_ip` is at `source_mac`").
    Reply,
}

impl ArpOperation {
    fn to_u16(self) -> u16 {
        match self {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
        }
    }
}

/// A view of an ARP packet. Only the Ethernet/IPv4 layout (28 bytes) is accepted by
/// `new_checked`, which checks the address lengths so that the fixed field offsets hold.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wrap a buffer without checking it. Accessors may panic if it is shorter than 28 bytes.
    pub fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }
    /// Wrap untrusted bytes: checks the buffer holds 28 bytes, after which no accessor panics.
    /// The hardware and protocol types and lengths are left to [`ArpRepr::parse`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Check that the buffer holds at least the 28 bytes of the Ethernet/IPv4 layout.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < PACKET_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }
    /// The hardware type field (`ar$hrd`; 1 is Ethernet).
    pub fn hardware_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::HTYPE)
    }
    /// The protocol type field (`ar$pro`; 0x0800 is IPv4).
    pub fn protocol_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PTYPE)
    }
    /// The hardware address length field (`ar$hln`), in bytes.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }
    /// The protocol address length field (`ar$pln`), in bytes.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }
    /// The operation field (`ar$op`; 1 request, 2 reply).
    pub fn operation(&self) -> u16 {
        be16(self.buffer.as_ref(), field::OPER)
    }
    /// The sender hardware address (`ar$sha`).
    pub fn source_hardware_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::SHA])
    }
    /// The sender protocol address (`ar$spa`).
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::SPA.start)
    }
    /// The target hardware address (`ar$tha`).
    pub fn target_hardware_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::THA])
    }
    /// The target protocol address (`ar$tpa`).
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::TPA.start)
    }
}

pub(crate) fn ipv4_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// The meaning of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Request or reply.
    pub operation: ArpOperation,
    /// Sender hardware address (`ar$sha`).
    pub source_mac: MacAddr,
    /// Sender IPv4 address (`ar$spa`).
    pub source_ip: Ipv4Addr,
    /// Target hardware address (`ar$tha`); zero in a request.
    pub target_mac: MacAddr,
    /// Target IPv4 address (`ar$tpa`).
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Read a packet: Ethernet/IPv4 only ([`Error::Unsupported`] otherwise, and for operations other
    /// than request and reply), with 6- and 4-byte address lengths ([`Error::Malformed`] otherwise).
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Result<ArpRepr> {
        p.check_len()?;
        if p.hardware_type() != HTYPE_ETHERNET || p.protocol_type() != PTYPE_IPV4 {
            return Err(Error::Unsupported);
        }
        if p.hardware_len() != 6 || p.protocol_len() != 4 {
            return Err(Error::Malformed);
        }
        let operation = match p.operation() {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            _ => return Err(Error::Unsupported),
        };
        Ok(ArpRepr {
            operation,
            source_mac: p.source_hardware_addr(),
            source_ip: p.source_protocol_addr(),
            target_mac: p.target_hardware_addr(),
            target_ip: p.target_protocol_addr(),
        })
    }

    /// Length of the packet on the wire: always [`PACKET_LEN`] (28 bytes).
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Write the 28-byte Ethernet/IPv4 packet into the front of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < PACKET_LEN {
            return Err(Error::BufferTooSmall);
        }
        put16(buf, field::HTYPE, HTYPE_ETHERNET);
        put16(buf, field::PTYPE, PTYPE_IPV4);
        buf[field::HLEN] = 6;
        buf[field::PLEN] = 4;
        put16(buf, field::OPER, self.operation.to_u16());
        buf[field::SHA].copy_from_slice(&self.source_mac.0);
        buf[field::SPA].copy_from_slice(&self.source_ip.octets());
        buf[field::THA].copy_from_slice(&self.target_mac.0);
        buf[field::TPA].copy_from_slice(&self.target_ip.octets());
        Ok(PACKET_LEN)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::ethernet::tests::arb_mac;
    use proptest::prelude::*;

    pub fn arb_ip() -> impl Strategy<Value = Ipv4Addr> {
        any::<u32>().prop_map(Ipv4Addr::from)
    }

    pub fn arb_repr() -> impl Strategy<Value = ArpRepr> {
        (any::<bool>(), arb_mac(), arb_ip(), arb_mac(), arb_ip()).prop_map(|(req, sm, si, tm, ti)| ArpRepr {
            operation: if req { ArpOperation::Request } else { ArpOperation::Reply },
            source_mac: sm,
            source_ip: si,
            target_mac: tm,
            target_ip: ti,
        })
    }

    #[test]
    fn rejects_other_hardware_and_lengths() {
        let repr = ArpRepr {
            operation: ArpOperation::Request,
            source_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            source_ip: Ipv4Addr::new(198, 18, 0, 1),
            target_mac: MacAddr::UNSPECIFIED,
            target_ip: Ipv4Addr::new(198, 18, 0, 2),
        };
        let mut buf = [0u8; PACKET_LEN];
        repr.emit(&mut buf).unwrap();
        let mut b = buf;
        b[1] = 6; // IEEE 802 hardware type
        assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&b[..]).unwrap()), Err(Error::Unsupported));
        let mut b = buf;
        b[4] = 8; // hardware length that does not fit Ethernet
        assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&b[..]).unwrap()), Err(Error::Malformed));
        let mut b = buf;
        b[7] = 3; // RARP request
        assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&b[..]).unwrap()), Err(Error::Unsupported));
        assert_eq!(ArpPacket::new_checked(&buf[..27]).unwrap_err(), Error::Truncated);
    }

    proptest! {
        #[test]
        fn round_trip(repr in arb_repr()) {
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut buf).unwrap();
            prop_assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap()).unwrap(), repr);
        }

        #[test]
        fn parse_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = ArpPacket::new_checked(&bytes[..]) {
                let _ = ArpRepr::parse(&p);
            }
        }
    }
}
