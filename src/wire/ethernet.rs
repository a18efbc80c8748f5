//! Ethernet II frames (IEEE 802.3 clause 3.2.6, "Ethernet II"/DIX framing).
//!
//! 802.1Q tags and 802.3 length-field frames are reported as an unknown EtherType; the
//! stack counts and drops them.

use super::{be16, put16, Error, Result};
use core::fmt;

/// A 48-bit MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The broadcast address, ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// The all-zeros address, 00:00:00:00:00:00.
    pub const UNSPECIFIED: MacAddr = MacAddr([0; 6]);

    /// Copy an address from the first 6 bytes of `b`. Panics if `b` is shorter than 6 bytes.
    pub fn from_bytes(b: &[u8]) -> MacAddr {
        let mut a = [0u8; 6];
        a.copy_from_slice(&b[..6]);
        MacAddr(a)
    }
    /// The address's 6 bytes, in transmission order.
    pub fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }
    /// Whether this is the broadcast address ff:ff:ff:ff:ff:ff.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }
    /// The I/G bit: group (multicast or broadcast) addresses.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }
    /// Whether the I/G bit is clear: an individual (unicast) address.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl core::str::FromStr for MacAddr {
    type Err = Error;
    fn from_str(s: &str) -> Result<MacAddr> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in out.iter_mut() {
            let p = parts.next().ok_or(Error::Malformed)?;
            if p.len() != 2 {
                return Err(Error::Malformed);
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| Error::Malformed)?;
        }
        if parts.next().is_some() {
            return Err(Error::Malformed);
        }
        Ok(MacAddr(out))
    }
}

/// The EtherType field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    /// 0x0800: IPv4.
    Ipv4,
    /// 0x0806: ARP.
    Arp,
    /// 0x86dd: IPv6.
    Ipv6,
    /// Any other value, carried as read (including 802.1Q tags and 802.3 length fields).
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86dd => EtherType::Ipv6,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(t: EtherType) -> u16 {
        match t {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Unknown(v) => v,
        }
    }
}

mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: usize = 14;
}

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wrap a buffer without checking it. Accessors may panic if it is shorter than the header.
    pub fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wrap untrusted bytes: after this succeeds, no accessor panics.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Check that the buffer holds at least the 14-byte header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Unwrap the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// The destination MAC address (bytes 0..6).
    pub fn dst_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::DST])
    }
    /// The source MAC address (bytes 6..12).
    pub fn src_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::SRC])
    }
    /// The EtherType (bytes 12..14).
    pub fn ethertype(&self) -> EtherType {
        be16(self.buffer.as_ref(), field::ETHERTYPE).into()
    }
    /// The bytes after the 14-byte header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Set the destination MAC address.
    pub fn set_dst_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.0)
    }
    /// Set the source MAC address.
    pub fn set_src_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.0)
    }
    /// Set the EtherType.
    pub fn set_ethertype(&mut self, t: EtherType) {
        put16(self.buffer.as_mut(), field::ETHERTYPE, t.into())
    }
    /// The bytes after the 14-byte header, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// The meaning of an Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    /// The source MAC address.
    pub src: MacAddr,
    /// The destination MAC address.
    pub dst: MacAddr,
    /// The EtherType of the payload.
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Read the header of a frame; fails only if the frame is shorter than the header.
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<EthernetRepr> {
        frame.check_len()?;
        Ok(EthernetRepr { src: frame.src_addr(), dst: frame.dst_addr(), ethertype: frame.ethertype() })
    }

    /// Length of the header on the wire: always [`HEADER_LEN`] (14 bytes).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the header into the first 14 bytes of `buf`; the payload is the caller's.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < HEADER_LEN {
            return Err(Error::BufferTooSmall);
        }
        let mut f = EthernetFrame::new_unchecked(buf);
        f.set_dst_addr(self.dst);
        f.set_src_addr(self.src);
        f.set_ethertype(self.ethertype);
        Ok(HEADER_LEN)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub fn arb_mac() -> impl Strategy<Value = MacAddr> {
        any::<[u8; 6]>().prop_map(MacAddr)
    }

    pub fn arb_repr() -> impl Strategy<Value = EthernetRepr> {
        (arb_mac(), arb_mac(), any::<u16>()).prop_map(|(src, dst, t)| EthernetRepr {
            src,
            dst,
            ethertype: EtherType::from(t),
        })
    }

    #[test]
    fn fields() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0xaa];
        let f = EthernetFrame::new_checked(&bytes[..]).unwrap();
        assert!(f.dst_addr().is_broadcast());
        assert_eq!(f.src_addr().to_string(), "02:00:00:00:00:01");
        assert_eq!(f.ethertype(), EtherType::Arp);
        assert_eq!(f.payload(), &[0xaa]);
        assert_eq!(EthernetFrame::new_checked(&bytes[..13]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn mac_parse() {
        assert_eq!("02:00:00:00:00:01".parse::<MacAddr>().unwrap(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert!("02:00:00:00:00".parse::<MacAddr>().is_err());
        assert!("02:00:00:00:00:01:02".parse::<MacAddr>().is_err());
        assert!("zz:00:00:00:00:01".parse::<MacAddr>().is_err());
    }

    #[test]
    fn emit_into_short_buffer_is_an_error() {
        let r = EthernetRepr { src: MacAddr::BROADCAST, dst: MacAddr::BROADCAST, ethertype: EtherType::Ipv4 };
        assert_eq!(r.emit(&mut [0u8; 13]), Err(Error::BufferTooSmall));
    }

    proptest! {
        #[test]
        fn round_trip(repr in arb_repr(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut buf = vec![0u8; repr.buffer_len() + payload.len()];
            prop_assert_eq!(repr.emit(&mut buf).unwrap(), HEADER_LEN);
            buf[HEADER_LEN..].copy_from_slice(&payload);
            let f = EthernetFrame::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(EthernetRepr::parse(&f).unwrap(), repr);
            prop_assert_eq!(f.payload(), &payload[..]);
        }

        #[test]
        fn parse_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(f) = EthernetFrame::new_checked(&bytes[..]) {
                let _ = EthernetRepr::parse(&f);
                let _ = f.payload();
            }
        }
    }
}
