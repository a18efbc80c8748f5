//! UDP (RFC 768) over IPv4.
//!
//! A zero checksum means "none" over IPv4 (RFC 768) and is accepted; a computed checksum of
//! zero is sent as 0xffff (RFC 768: "if the computed checksum is zero, it is transmitted as
//! all ones").

use super::checksum;
use super::ipv4::IpProtocol;
use super::{be16, put16, Error, Result, RxChecksum};
use core::net::Ipv4Addr;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wrap a buffer without checking it. Accessors may panic if it is shorter than the header or
    /// its length field points past the end.
    pub fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }
    /// Wrap untrusted bytes: the header fits, and the length field is at least 8 and within
    /// the buffer.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Check that the buffer holds the 8-byte header and that the length field is at least 8 and
    /// within the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let l = self.len() as usize;
        if l < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if l > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    /// The source port (0 if unused).
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }
    /// The destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }
    /// The length field: header and payload, in bytes (trailing padding excluded).
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Whether the datagram carries no payload (the length field is 8).
    pub fn is_empty(&self) -> bool {
        self.len() as usize == HEADER_LEN
    }
    /// The checksum field as it is on the wire (0: none sent).
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// The payload: after the header, up to the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len() as usize]
    }
    /// Whether the checksum over the pseudo-header of `src` → `dst` and the datagram is correct; a
    /// zero checksum (none sent) counts as correct.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let len = self.len();
        let ph = checksum::pseudo_header_v4(src, dst, IpProtocol::Udp.into(), len);
        checksum::combine(&[ph, checksum::sum(&self.buffer.as_ref()[..len as usize])]) == 0xffff
    }
}

/// The meaning of a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The datagram's data.
    pub payload: &'a [u8],
}

impl<'a> UdpRepr<'a> {
    /// Parse a checked datagram that arrived from `src` to `dst`. `Verify` checks the checksum
    /// (unless it is zero).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        p: &UdpPacket<&'a T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        rx: RxChecksum,
    ) -> Result<UdpRepr<'a>> {
        p.check_len()?;
        if rx.verify_l4() && !p.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        let buf: &'a [u8] = p.buffer.as_ref();
        Ok(UdpRepr { src_port: p.src_port(), dst_port: p.dst_port(), payload: &buf[HEADER_LEN..p.len() as usize] })
    }

    /// Length of the datagram on the wire: the 8-byte header and the payload.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Write the whole datagram into the front of `buf`, with its checksum over the pseudo-header
    /// of `src` → `dst` (a computed zero sent as 0xffff).
    pub fn emit(&self, buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) -> Result<usize> {
        let len = self.buffer_len();
        if buf.len() < len {
            return Err(Error::BufferTooSmall);
        }
        let len16 = u16::try_from(len).map_err(|_| Error::Malformed)?;
        let buf = &mut buf[..len];
        put16(buf, field::SRC_PORT, self.src_port);
        put16(buf, field::DST_PORT, self.dst_port);
        put16(buf, field::LENGTH, len16);
        put16(buf, field::CHECKSUM, 0);
        buf[HEADER_LEN..].copy_from_slice(self.payload);
        let ph = checksum::pseudo_header_v4(src, dst, IpProtocol::Udp.into(), len16);
        let c = match checksum::finish(checksum::combine(&[ph, checksum::sum(buf)])) {
            0 => 0xffff,
            c => c,
        };
        put16(buf, field::CHECKSUM, c);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    #[test]
    fn zero_checksum_means_none_and_lengths_checked() {
        let r = UdpRepr { src_port: 53, dst_port: 5353, payload: b"xyz" };
        let mut b = vec![0u8; r.buffer_len() + 2]; // two bytes of trailing padding
        r.emit(&mut b, A, B).unwrap();
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(UdpRepr::parse(&p, A, B, RxChecksum::Verify).unwrap(), r);
        b[7] ^= 1;
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(UdpRepr::parse(&p, A, B, RxChecksum::Verify), Err(Error::BadChecksum));
        b[6..8].copy_from_slice(&[0, 0]);
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(UdpRepr::parse(&p, A, B, RxChecksum::Verify).unwrap(), r);
        let mut bad = b.clone();
        bad[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(UdpPacket::new_checked(&bad[..]).unwrap_err(), Error::Malformed);
        bad[4..6].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(UdpPacket::new_checked(&bad[..]).unwrap_err(), Error::Truncated);
    }

    proptest! {
        #[test]
        fn round_trip(src_port in any::<u16>(), dst_port in any::<u16>(),
                      payload in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let r = UdpRepr { src_port, dst_port, payload: &payload };
            let mut b = vec![0u8; r.buffer_len()];
            r.emit(&mut b, A, B).unwrap();
            let p = UdpPacket::new_checked(&b[..]).unwrap();
            prop_assert!(p.checksum() != 0);
            prop_assert_eq!(UdpRepr::parse(&p, A, B, RxChecksum::Verify).unwrap(), r);
        }

        #[test]
        fn parse_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = UdpPacket::new_checked(&bytes[..]) {
                let _ = UdpRepr::parse(&p, A, B, RxChecksum::Verify);
            }
        }
    }
}
