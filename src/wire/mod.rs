//! Wire formats.
//!
//! Every header has two faces, as in smoltcp's `wire` module:
//!
//! * a *view* (`Packet<T: AsRef<[u8]>>`, `Frame<T>`) over a buffer the caller owns (for the
//!   stack, a UMEM frame). `new_checked` validates lengths once; after it succeeds no accessor
//!   can panic, whatever the bytes are. `new_unchecked` is for buffers the stack built itself.
//! * a `Repr`: the header's meaning as plain values. `Repr::parse` reads a checked view and
//!   rejects what is malformed; `Repr::emit` writes into a caller-owned buffer (never a new
//!   `Vec`) and reports how many bytes it wrote; `buffer_len()` says how many it needs.
//!
//! Received bytes are untrusted: nothing in this module panics on them, and every rejection
//! is a typed [`Error`] that the stack counts as a drop reason.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod frame;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod ndp;
pub mod tcp;
pub mod toeplitz;
pub mod udp;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetFrame, EthernetRepr, MacAddr};
pub use frame::{FrameRepr, L4Repr, L6Repr, NetRepr};
pub use icmpv4::{DstUnreachable, Icmpv4Packet, Icmpv4Repr, TimeExceeded};
pub use icmpv6::{Icmpv6Packet, Icmpv6Repr};
pub use ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Packet, Ipv6Repr};
pub use ndp::{NdpOptions, NdpRepr, PrefixInfo};
pub use tcp::{SackBlocks, TcpFlags, TcpOption, TcpOptions, TcpPacket, TcpRepr, Timestamp};
pub use udp::{UdpPacket, UdpRepr};

use core::fmt;

/// Why a buffer was not accepted (parse) or could not be written (emit).
///
/// Each variant is a drop reason the stack counts; none of them is a bug in the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the header, or than a length field inside it claims.
    Truncated,
    /// A field has a value the format forbids (bad version, header length, option length…).
    Malformed,
    /// The checksum does not match the contents.
    BadChecksum,
    /// An IPv4 fragment. Recognised and refused until reassembly exists.
    Fragmented,
    /// Well-formed, but a kind the stack does not handle (unknown EtherType, IP protocol,
    /// ICMP type, ARP hardware type…).
    Unsupported,
    /// `emit` was given a buffer smaller than `buffer_len()`.
    BufferTooSmall,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated",
            Error::Malformed => "malformed",
            Error::BadChecksum => "bad checksum",
            Error::Fragmented => "IPv4 fragment",
            Error::Unsupported => "unsupported",
            Error::BufferTooSmall => "buffer too small",
        })
    }
}

impl std::error::Error for Error {}

/// Result of wire operations.
pub type Result<T> = core::result::Result<T, Error>;

/// What to do with checksums of received packets.
///
/// Transmitted packets always carry checksums the stack computed itself. On receive the
/// checksum is verified unless the device vouches for it: on veth the kernel peer leaves
/// TCP/UDP checksums *partial* (offload), so a device may say the check was done for it
/// (see AFXDP-NOTES.md, "Checksums").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RxChecksum {
    /// Verify every checksum; a mismatch is [`Error::BadChecksum`].
    #[default]
    Verify,
    /// The device already verified (or will not fill in) L4 checksums: skip the TCP, UDP
    /// and ICMP check. The IPv4 header checksum is always verified: no offload leaves it partial.
    TrustL4,
}

impl RxChecksum {
    pub(crate) fn verify_l4(self) -> bool {
        self == RxChecksum::Verify
    }
}

/// Read a big-endian `u16` at `at`. Callers have checked the length.
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Read a big-endian `u32` at `at`. Callers have checked the length.
#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    // One bounds check for the four bytes, not one each.
    let four: [u8; 4] = b[at..at + 4].try_into().expect("a 4-byte slice");
    u32::from_be_bytes(four)
}

#[inline]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
