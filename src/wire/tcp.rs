//! TCP header and options (RFC 9293 §3.1).
//!
//! Options understood: End of Option List and No-Operation (RFC 9293 §3.2), MSS (RFC 9293
//! §3.7.1), Window Scale and Timestamps (RFC 7323 §2.2, §3.2), SACK-Permitted and SACK with
//! up to four blocks (RFC 2018 §2, §3). Unknown options are skipped by their length
//! (RFC 9293 §3.2: "must be prepared to handle an illegal option length"); a length below 2,
//! one running past the header, or a wrong length for a known option makes the segment
//! [`Error::Malformed`] (RFC 9293 §3.1, MUST-7: drop, do not crash).
//!
//! Options are emitted in the layout Linux uses (`tcp_options_write`), which is known to pass
//! every middlebox: MSS, then SACK-Permitted folded into the Timestamps word (or NOP NOP before
//! Timestamps), NOP NOP SACK-Permitted when there are no timestamps, NOP Window Scale, and
//! NOP NOP SACK blocks. Every piece is a multiple of 4 bytes, so no padding is needed.

use super::checksum;
use super::ipv4::IpProtocol;
use super::{be16, be32, put16, put32, Error, Result, RxChecksum};
use core::net::IpAddr;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const OFF_FLAGS: usize = 12;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const OPTIONS: usize = 20;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;
/// Largest TCP header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;
/// Most option bytes a header can carry.
pub const MAX_OPTIONS_LEN: usize = MAX_HEADER_LEN - HEADER_LEN;

const OPT_EOL: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;
const OPT_WS: u8 = 3;
const OPT_SACK_PERM: u8 = 4;
const OPT_SACK: u8 = 5;
const OPT_TS: u8 = 8;

bitflags::bitflags! {
    /// The control bits (RFC 9293 §3.1; NS is RFC 3540, CWR/ECE RFC 3168).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct TcpFlags: u16 {
        /// FIN: the sender has no more data (RFC 9293 §3.1).
        const FIN = 0x001;
        /// SYN: synchronise sequence numbers (RFC 9293 §3.1).
        const SYN = 0x002;
        /// RST: reset the connection (RFC 9293 §3.1).
        const RST = 0x004;
        /// PSH: push function (RFC 9293 §3.1).
        const PSH = 0x008;
        /// ACK: the acknowledgment number is significant (RFC 9293 §3.1).
        const ACK = 0x010;
        /// URG: the urgent pointer is significant (RFC 9293 §3.1).
        const URG = 0x020;
        /// ECE: ECN-Echo (RFC 3168).
        const ECE = 0x040;
        /// CWR: Congestion Window Reduced (RFC 3168).
        const CWR = 0x080;
        /// NS: ECN-nonce concealment protection (RFC 3540; historic).
        const NS  = 0x100;
    }
}

/// A view of a TCP segment.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wrap a buffer without checking it. Accessors may panic if it is shorter than the header or
    /// its data offset points past the end.
    pub fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wrap untrusted bytes: checks that the buffer holds the fixed header and that the data
    /// offset is at least 5 words and within the buffer. After this, no accessor panics.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Check that the buffer holds the fixed header and that the data offset is at least 5 words
    /// and within the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len < hl {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Unwrap the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// The source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }
    /// The destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }
    /// The sequence number (raw, not relative to the ISN).
    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ)
    }
    /// The acknowledgment number (raw; meaningful only when ACK is set).
    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK)
    }
    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::OFF_FLAGS] >> 4) as usize) * 4
    }
    /// The control bits (the low 9 bits of the data offset/flags word; reserved bits dropped).
    pub fn flags(&self) -> TcpFlags {
        TcpFlags::from_bits_truncate(be16(self.buffer.as_ref(), field::OFF_FLAGS) & 0x01ff)
    }
    /// The raw 16-bit window field, not yet scaled.
    pub fn window_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW)
    }
    /// The checksum field as it is on the wire.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// The urgent pointer field.
    pub fn urgent_at(&self) -> u16 {
        be16(self.buffer.as_ref(), field::URGENT)
    }
    /// The raw option bytes.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }
    /// The bytes after the header (data offset × 4 onwards).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    /// The segment (header and payload, the whole buffer) checks out against the pseudo-header
    /// of its IPv4 or IPv6 addresses (RFC 9293 §3.1, RFC 8200 §8.1).
    pub fn verify_checksum(&self, src: impl Into<IpAddr>, dst: impl Into<IpAddr>) -> bool {
        let b = self.buffer.as_ref();
        let Ok(len) = u16::try_from(b.len()) else { return false };
        let ph = checksum::pseudo_header(src.into(), dst.into(), IpProtocol::Tcp.into(), len);
        checksum::combine(&[ph, checksum::sum(b)]) == 0xffff
    }
}

/// One TCP option as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// Kind 0: End of Option List; parsing stops here (RFC 9293 §3.2).
    EndOfList,
    /// Kind 1: No-Operation, one byte of padding (RFC 9293 §3.2).
    NoOperation,
    /// Kind 2: Maximum Segment Size, in bytes (RFC 9293 §3.7.1).
    MaxSegmentSize(u16),
    /// Kind 3: Window Scale shift count (RFC 7323 §2.2).
    WindowScale(u8),
    /// Kind 4: SACK-Permitted, sent on a SYN (RFC 2018 §2).
    SackPermitted,
    /// Kind 5: SACK blocks (RFC 2018 §3).
    Sack(SackBlocks),
    /// Kind 8: Timestamps (RFC 7323 §3.2).
    Timestamp(Timestamp),
    /// An option of a kind not listed above, skipped by its length.
    Unknown {
        /// The option's kind byte.
        kind: u8,
        /// The option's value: the bytes after kind and length.
        data: &'a [u8],
    },
}

impl<'a> TcpOption<'a> {
    /// Parse the option at the front of `bytes`; returns it and the bytes after it.
    pub fn parse(bytes: &'a [u8]) -> Result<(TcpOption<'a>, &'a [u8])> {
        let (&kind, rest) = bytes.split_first().ok_or(Error::Truncated)?;
        match kind {
            OPT_EOL => return Ok((TcpOption::EndOfList, &[])),
            OPT_NOP => return Ok((TcpOption::NoOperation, rest)),
            _ => {}
        }
        let &len = rest.first().ok_or(Error::Malformed)?;
        let len = len as usize;
        // RFC 9293 §3.2: the length counts kind and length octets, so it is at least 2, and
        // the option must fit in the header.
        if len < 2 || len > bytes.len() {
            return Err(Error::Malformed);
        }
        let data = &bytes[2..len];
        let after = &bytes[len..];
        let opt = match kind {
            OPT_MSS if len == 4 => TcpOption::MaxSegmentSize(be16(data, 0)),
            OPT_WS if len == 3 => TcpOption::WindowScale(data[0]),
            OPT_SACK_PERM if len == 2 => TcpOption::SackPermitted,
            OPT_TS if len == 10 => TcpOption::Timestamp(Timestamp { tsval: be32(data, 0), tsecr: be32(data, 4) }),
            // RFC 2018 §3: 2 + 8n bytes, n blocks; at most 4 fit in 40 option bytes.
            OPT_SACK if len >= 10 && (len - 2) % 8 == 0 && len <= 34 => {
                let mut blocks = SackBlocks::default();
                for b in data.chunks_exact(8) {
                    blocks.push(be32(b, 0), be32(b, 4));
                }
                TcpOption::Sack(blocks)
            }
            OPT_MSS | OPT_WS | OPT_SACK_PERM | OPT_TS | OPT_SACK => return Err(Error::Malformed),
            _ => TcpOption::Unknown { kind, data },
        };
        Ok((opt, after))
    }
}

/// The Timestamps option (RFC 7323 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Timestamp {
    /// TSval: the sender's timestamp clock when the segment was sent.
    pub tsval: u32,
    /// TSecr: the TSval echoed back from the peer (meaningful when ACK is set).
    pub tsecr: u32,
}

/// Up to four SACK blocks `[left, right)` (RFC 2018 §3), kept inline (no allocation).
/// Equality looks at the blocks in use only.
#[derive(Debug, Clone, Copy, Default)]
pub struct SackBlocks {
    len: u8,
    blocks: [(u32, u32); 4],
}

impl SackBlocks {
    /// Most blocks one header can carry (4, in 34 of the 40 option bytes).
    pub const MAX: usize = 4;

    /// Add a block; a fifth is ignored (it could not be sent or received).
    pub fn push(&mut self, left: u32, right: u32) {
        if (self.len as usize) < Self::MAX {
            self.blocks[self.len as usize] = (left, right);
            self.len += 1;
        }
    }
    /// Number of blocks in use.
    pub fn len(&self) -> usize {
        self.len as usize
    }
    /// Whether no block is in use.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The blocks in use, each `(left, right)`, in the order they were pushed.
    pub fn as_slice(&self) -> &[(u32, u32)] {
        &self.blocks[..self.len as usize]
    }
    /// Keep at most `n` blocks (the first ones: the most recent, RFC 2018 §4).
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n as u8);
    }
}

impl PartialEq for SackBlocks {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for SackBlocks {}

impl core::hash::Hash for SackBlocks {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

/// The options the stack understands, gathered from (or to be written into) one header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpOptions {
    /// Maximum Segment Size option, in bytes (RFC 9293 §3.7.1); sent on SYNs.
    pub mss: Option<u16>,
    /// Window Scale shift count (RFC 7323 §2.2); sent on SYNs.
    pub window_scale: Option<u8>,
    /// SACK-Permitted option present (RFC 2018 §2).
    pub sack_permitted: bool,
    /// SACK blocks (RFC 2018 §3); empty when there is no SACK option.
    pub sack: SackBlocks,
    /// Timestamps option (RFC 7323 §3.2).
    pub timestamp: Option<Timestamp>,
}

impl TcpOptions {
    /// The options of a SYN as Linux sends it by default: MSS 1460 (a 1500-byte MTU), window
    /// scale 7, SACK-permitted, timestamps (TSval `tsval`). For load and flood generators and
    /// tests that should look like a Linux peer.
    pub fn linux_syn(tsval: u32) -> TcpOptions {
        TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamp: Some(Timestamp { tsval, tsecr: 0 }),
            ..TcpOptions::default()
        }
    }

    /// Parse the option bytes of a header. Unknown options are skipped; a repeated option
    /// keeps its last value.
    pub fn parse(bytes: &[u8]) -> Result<TcpOptions> {
        let mut o = TcpOptions::default();
        // RFC 7323 Appendix A: the layout nearly every segment of a connection with
        // timestamps carries, NOP NOP TS(10), read at once (Linux: tcp_parse_aligned_timestamp);
        // the general parse gives the same options for it.
        if let [OPT_NOP, OPT_NOP, OPT_TS, 10, ts @ ..] = bytes {
            if ts.len() == 8 {
                o.timestamp = Some(Timestamp { tsval: be32(ts, 0), tsecr: be32(ts, 4) });
                return Ok(o);
            }
        }
        Self::parse_each(bytes)
    }

    /// The options one at a time (RFC 9293 §3.2), in any layout.
    fn parse_each(mut bytes: &[u8]) -> Result<TcpOptions> {
        let mut o = TcpOptions::default();
        while !bytes.is_empty() {
            let (opt, rest) = TcpOption::parse(bytes)?;
            match opt {
                TcpOption::EndOfList => break,
                TcpOption::NoOperation | TcpOption::Unknown { .. } => {}
                TcpOption::MaxSegmentSize(v) => o.mss = Some(v),
                TcpOption::WindowScale(v) => o.window_scale = Some(v),
                TcpOption::SackPermitted => o.sack_permitted = true,
                TcpOption::Sack(b) => o.sack = b,
                TcpOption::Timestamp(t) => o.timestamp = Some(t),
            }
            bytes = rest;
        }
        Ok(o)
    }

    /// How many SACK blocks fit beside the other options in 40 bytes.
    pub fn sack_capacity(&self) -> usize {
        let fixed = self.len_without_sack();
        // NOP NOP kind len = 4 bytes, then 8 per block.
        (MAX_OPTIONS_LEN.saturating_sub(fixed + 4) / 8).min(SackBlocks::MAX)
    }

    fn len_without_sack(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        if self.timestamp.is_some() {
            n += 12; // (SACK-Permitted or NOP NOP) + Timestamps
        } else if self.sack_permitted {
            n += 4; // NOP NOP SACK-Permitted
        }
        if self.window_scale.is_some() {
            n += 4; // NOP Window Scale
        }
        n
    }

    /// Number of SACK blocks that will be written (those that fit; see [`Self::sack_capacity`]).
    fn sack_emitted(&self) -> usize {
        self.sack.len().min(self.sack_capacity())
    }

    /// Bytes these options take on the wire (always a multiple of 4, at most 40).
    pub fn buffer_len(&self) -> usize {
        let n = self.sack_emitted();
        self.len_without_sack() + if n > 0 { 4 + 8 * n } else { 0 }
    }

    /// Write the options in Linux's layout; `buf` must be `buffer_len()` long.
    fn emit(&self, buf: &mut [u8]) {
        let mut at = 0;
        if let Some(mss) = self.mss {
            buf[at..at + 2].copy_from_slice(&[OPT_MSS, 4]);
            put16(buf, at + 2, mss);
            at += 4;
        }
        if let Some(ts) = self.timestamp {
            if self.sack_permitted {
                buf[at..at + 2].copy_from_slice(&[OPT_SACK_PERM, 2]);
            } else {
                buf[at..at + 2].copy_from_slice(&[OPT_NOP, OPT_NOP]);
            }
            buf[at + 2..at + 4].copy_from_slice(&[OPT_TS, 10]);
            put32(buf, at + 4, ts.tsval);
            put32(buf, at + 8, ts.tsecr);
            at += 12;
        } else if self.sack_permitted {
            buf[at..at + 4].copy_from_slice(&[OPT_NOP, OPT_NOP, OPT_SACK_PERM, 2]);
            at += 4;
        }
        if let Some(ws) = self.window_scale {
            buf[at..at + 4].copy_from_slice(&[OPT_NOP, OPT_WS, 3, ws]);
            at += 4;
        }
        let n = self.sack_emitted();
        if n > 0 {
            buf[at..at + 4].copy_from_slice(&[OPT_NOP, OPT_NOP, OPT_SACK, (2 + 8 * n) as u8]);
            at += 4;
            for &(l, r) in &self.sack.as_slice()[..n] {
                put32(buf, at, l);
                put32(buf, at + 4, r);
                at += 8;
            }
        }
        debug_assert_eq!(at, buf.len());
    }
}

/// The meaning of a TCP segment. Sequence numbers are raw `u32`; the TCP layer gives them
/// modular arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number of the first byte (or of the SYN/FIN).
    pub seq: u32,
    /// Meaningful when `flags` has ACK.
    pub ack: u32,
    /// The control bits.
    pub flags: TcpFlags,
    /// The raw 16-bit window field (unscaled).
    pub window: u16,
    /// Urgent pointer (meaningful when URG is set).
    pub urgent: u16,
    /// The options the stack understands.
    pub options: TcpOptions,
    /// The segment's data.
    pub payload: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// Parse a checked segment that arrived from `src` to `dst` (IPv4 or IPv6).
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        p: &TcpPacket<&'a T>,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        rx: RxChecksum,
    ) -> Result<TcpRepr<'a>> {
        p.check_len()?;
        if rx.verify_l4() && !p.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        let options = TcpOptions::parse(p.options())?;
        let buf: &'a [u8] = p.buffer.as_ref();
        Ok(TcpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq_number(),
            ack: p.ack_number(),
            flags: p.flags(),
            window: p.window_len(),
            urgent: p.urgent_at(),
            options,
            payload: &buf[p.header_len()..],
        })
    }

    /// Header length (20 + options).
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.buffer_len()
    }

    /// Header plus payload.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Sequence space the segment occupies (RFC 9293 §3.4: SYN and FIN count one each).
    pub fn segment_len(&self) -> usize {
        self.payload.len() + self.flags.contains(TcpFlags::SYN) as usize + self.flags.contains(TcpFlags::FIN) as usize
    }

    /// Write header and payload (copied from `self.payload`) with the checksum.
    pub fn emit(&self, buf: &mut [u8], src: impl Into<IpAddr>, dst: impl Into<IpAddr>) -> Result<usize> {
        let len = self.buffer_len();
        if buf.len() < len {
            return Err(Error::BufferTooSmall);
        }
        let hl = self.header_len();
        buf[hl..len].copy_from_slice(self.payload);
        self.emit_header_over(&mut buf[..len], src, dst)
    }

    /// Zero-copy transmit: `segment[header_len()..]` already holds the payload (the
    /// application wrote it into the frame); write the header in front of it and checksum the
    /// whole. `self.payload` is ignored. Returns the segment length.
    pub fn emit_header_over(
        &self,
        segment: &mut [u8],
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
    ) -> Result<usize> {
        self.emit_header(segment, src.into(), dst.into(), false)
    }

    /// [`TcpRepr::emit_header_over`] for a device that fills in TCP checksums (TX checksum
    /// offload): the checksum field gets the pseudo-header's sum (RFC 9293 §3.1), which the
    /// device's sum over the whole segment completes — what DPDK and NICs expect.
    pub fn emit_header_over_offloaded(
        &self,
        segment: &mut [u8],
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
    ) -> Result<usize> {
        self.emit_header(segment, src.into(), dst.into(), true)
    }

    fn emit_header(&self, segment: &mut [u8], src: IpAddr, dst: IpAddr, offloaded: bool) -> Result<usize> {
        let hl = self.header_len();
        if segment.len() < hl {
            return Err(Error::BufferTooSmall);
        }
        let len = u16::try_from(segment.len()).map_err(|_| Error::Malformed)?;
        put16(segment, field::SRC_PORT, self.src_port);
        put16(segment, field::DST_PORT, self.dst_port);
        put32(segment, field::SEQ, self.seq);
        put32(segment, field::ACK, self.ack);
        put16(segment, field::OFF_FLAGS, ((hl as u16 / 4) << 12) | self.flags.bits());
        put16(segment, field::WINDOW, self.window);
        put16(segment, field::CHECKSUM, 0);
        put16(segment, field::URGENT, self.urgent);
        self.options.emit(&mut segment[HEADER_LEN..hl]);
        let ph = checksum::pseudo_header(src, dst, IpProtocol::Tcp.into(), len);
        let c = if offloaded { ph } else { checksum::finish(checksum::combine(&[ph, checksum::sum(segment)])) };
        put16(segment, field::CHECKSUM, c);
        Ok(segment.len())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};
    use proptest::prelude::*;

    pub fn arb_options() -> impl Strategy<Value = TcpOptions> {
        (
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u8>()),
            any::<bool>(),
            proptest::collection::vec((any::<u32>(), any::<u32>()), 0..=4),
            proptest::option::of((any::<u32>(), any::<u32>())),
        )
            .prop_map(|(mss, window_scale, sack_permitted, blocks, ts)| {
                let mut o = TcpOptions {
                    mss,
                    window_scale,
                    sack_permitted,
                    sack: SackBlocks::default(),
                    timestamp: ts.map(|(tsval, tsecr)| Timestamp { tsval, tsecr }),
                };
                for (l, r) in blocks {
                    o.sack.push(l, r);
                }
                // Only what fits is emitted; generate only what round-trips.
                let cap = o.sack_capacity();
                o.sack.truncate(cap);
                o
            })
    }

    pub fn arb_header() -> impl Strategy<Value = TcpRepr<'static>> {
        (any::<u16>(), any::<u16>(), any::<u32>(), any::<u32>(), 0u16..0x200, any::<u16>(), any::<u16>(), arb_options())
            .prop_map(|(src_port, dst_port, seq, ack, flags, window, urgent, options)| TcpRepr {
                src_port,
                dst_port,
                seq,
                ack,
                flags: TcpFlags::from_bits_truncate(flags),
                window,
                urgent,
                options,
                payload: &[],
            })
    }

    const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const A6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
    const B6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

    #[test]
    fn linux_syn_option_layout() {
        // What Linux sends in a SYN: MSS 1460, SACK-Permitted + TS, NOP, WS 7.
        let o = TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            sack: SackBlocks::default(),
            timestamp: Some(Timestamp { tsval: 0x01020304, tsecr: 0 }),
        };
        let mut b = [0u8; 20];
        assert_eq!(o.buffer_len(), 20);
        o.emit(&mut b);
        assert_eq!(b, [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0, 1, 3, 3, 7]);
        assert_eq!(TcpOptions::parse(&b).unwrap(), o);
    }

    #[test]
    fn sack_blocks_limited_by_space() {
        let mut o = TcpOptions { timestamp: Some(Timestamp::default()), ..Default::default() };
        for i in 0..4 {
            o.sack.push(i, i + 1);
        }
        // RFC 2018 §3: with timestamps, at most 3 blocks fit.
        assert_eq!(o.sack_capacity(), 3);
        assert_eq!(o.buffer_len(), 12 + 4 + 24);
        o.timestamp = None;
        assert_eq!(o.sack_capacity(), 4);
        assert_eq!(o.buffer_len(), 4 + 32);
    }

    #[test]
    fn malformed_option_lengths_are_rejected() {
        let cases: &[(&[u8], &str)] = &[
            (&[OPT_MSS], "kind without length"),
            (&[OPT_MSS, 0, 0, 0], "length 0"),
            (&[OPT_MSS, 1, 0, 0], "length 1"),
            (&[OPT_MSS, 3, 0, 0], "MSS of length 3"),
            (&[OPT_MSS, 8, 0, 0], "length past the header"),
            (&[OPT_WS, 4, 0, 0], "window scale of length 4"),
            (&[OPT_SACK_PERM, 3, 0, 0], "SACK-permitted of length 3"),
            (&[OPT_TS, 8, 0, 0, 0, 0, 0, 0], "timestamps of length 8"),
            (&[OPT_SACK, 6, 0, 0, 0, 0, 0, 0], "SACK of length 6"),
            (&[OPT_SACK, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "SACK of length 11"),
            (&[99, 1, 0, 0], "unknown option of length 1"),
            (&[99, 9, 0, 0], "unknown option past the header"),
        ];
        for (bytes, what) in cases {
            assert_eq!(TcpOptions::parse(bytes), Err(Error::Malformed), "{what}");
        }
    }

    #[test]
    fn unknown_options_skipped_and_eol_ends() {
        // Unknown kind 30 (MPTCP) of length 4, then MSS, then EOL, then garbage.
        let b = [30, 4, 0xaa, 0xbb, OPT_MSS, 4, 0x05, 0xdc, OPT_EOL, 0xff, 0xff, 0xff];
        let o = TcpOptions::parse(&b).unwrap();
        assert_eq!(o.mss, Some(1500));
    }

    #[test]
    fn data_offset_checks() {
        let r = TcpRepr {
            src_port: 1,
            dst_port: 2,
            seq: 3,
            ack: 4,
            flags: TcpFlags::ACK,
            window: 5,
            urgent: 0,
            options: TcpOptions::default(),
            payload: b"abc",
        };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut b, A, B).unwrap();
        let mut bad = b.clone();
        bad[12] = 0x40; // data offset 4
        assert_eq!(TcpPacket::new_checked(&bad[..]).unwrap_err(), Error::Malformed);
        let mut bad = b.clone();
        bad[12] = 0xf0; // data offset 15 > 23 bytes
        assert_eq!(TcpPacket::new_checked(&bad[..]).unwrap_err(), Error::Truncated);
        assert_eq!(TcpPacket::new_checked(&b[..19]).unwrap_err(), Error::Truncated);
        // Wrong pseudo-header: checksum fails, unless L4 checksums are trusted.
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(TcpRepr::parse(&p, B, B, RxChecksum::Verify), Err(Error::BadChecksum));
        assert_eq!(TcpRepr::parse(&p, B, B, RxChecksum::TrustL4).unwrap(), r);
        assert_eq!(r.segment_len(), 3);
    }

    #[test]
    fn zero_copy_header_over_payload() {
        let r = TcpRepr {
            src_port: 80,
            dst_port: 40000,
            seq: 1,
            ack: 2,
            flags: TcpFlags::ACK | TcpFlags::PSH,
            window: 100,
            urgent: 0,
            options: TcpOptions { timestamp: Some(Timestamp { tsval: 9, tsecr: 8 }), ..Default::default() },
            payload: &[],
        };
        let hl = r.header_len();
        let mut frame = vec![0u8; hl + 5];
        frame[hl..].copy_from_slice(b"hello");
        r.emit_header_over(&mut frame, A, B).unwrap();
        let p = TcpPacket::new_checked(&frame[..]).unwrap();
        let parsed = TcpRepr::parse(&p, A, B, RxChecksum::Verify).unwrap();
        assert_eq!(parsed.payload, b"hello");
        assert_eq!(parsed.options.timestamp, Some(Timestamp { tsval: 9, tsecr: 8 }));
    }

    /// With TX checksum offload the field holds the pseudo-header's sum: the segment fails
    /// verification as written, and the device's completion (the one's complement of the sum
    /// over the segment, written over the field) gives the checksum a full emit writes.
    #[test]
    fn offloaded_header_leaves_the_pseudo_header_sum_for_the_device() {
        let r = TcpRepr {
            src_port: 80,
            dst_port: 40000,
            seq: 7,
            ack: 9,
            flags: TcpFlags::ACK,
            window: 512,
            urgent: 0,
            options: TcpOptions::default(),
            payload: &[],
        };
        let hl = r.header_len();
        let (mut full, mut part) = (vec![0u8; hl + 3], vec![0u8; hl + 3]);
        full[hl..].copy_from_slice(b"abc");
        part[hl..].copy_from_slice(b"abc");
        r.emit_header_over(&mut full, A, B).unwrap();
        r.emit_header_over_offloaded(&mut part, A, B).unwrap();
        let len = part.len() as u16;
        let ph = checksum::pseudo_header(A.into(), B.into(), IpProtocol::Tcp.into(), len);
        assert_eq!(u16::from_be_bytes([part[16], part[17]]), ph);
        assert!(TcpRepr::parse(&TcpPacket::new_checked(&part[..]).unwrap(), A, B, RxChecksum::Verify).is_err());
        let done = checksum::finish(checksum::sum(&part));
        part[16..18].copy_from_slice(&done.to_be_bytes());
        assert_eq!(part, full);
    }

    proptest! {
        #[test]
        fn round_trip(header in arb_header(), payload in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let repr = TcpRepr { payload: &payload, ..header };
            let mut buf = vec![0u8; repr.buffer_len()];
            prop_assert_eq!(repr.emit(&mut buf, A, B).unwrap(), buf.len());
            prop_assert_eq!(buf.len() % 4, payload.len() % 4);
            let p = TcpPacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(TcpRepr::parse(&p, A, B, RxChecksum::Verify).unwrap(), repr);
        }

        /// Over IPv6 (RFC 8200 §8.1's pseudo-header): the segment checks out against its own
        /// addresses, not against another (one word off by one) nor against the IPv4 ones.
        #[test]
        fn round_trip_ipv6(header in arb_header(), payload in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let repr = TcpRepr { payload: &payload, ..header };
            let mut buf = vec![0u8; repr.buffer_len()];
            prop_assert_eq!(repr.emit(&mut buf, A6, B6).unwrap(), buf.len());
            let p = TcpPacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(TcpRepr::parse(&p, A6, B6, RxChecksum::Verify).unwrap(), repr);
            prop_assert!(!p.verify_checksum(A6, Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 3)));
            prop_assert!(!p.verify_checksum(A, B));
        }

        #[test]
        fn parse_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Ok(p) = TcpPacket::new_checked(&bytes[..]) {
                let _ = TcpRepr::parse(&p, A, B, RxChecksum::TrustL4);
            }
        }

        #[test]
        fn aligned_timestamps_parse_as_any_layout(ts in proptest::array::uniform8(any::<u8>()), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            // The fast path for NOP NOP TS gives what the option-by-option parse gives, and
            // leaves any other layout (more bytes after it) to that parse.
            let mut bytes = vec![OPT_NOP, OPT_NOP, OPT_TS, 10];
            bytes.extend_from_slice(&ts);
            prop_assert_eq!(TcpOptions::parse(&bytes).ok(), TcpOptions::parse_each(&bytes).ok());
            prop_assert!(TcpOptions::parse(&bytes).unwrap().timestamp.is_some());
            bytes.extend_from_slice(&tail);
            prop_assert_eq!(TcpOptions::parse(&bytes).ok(), TcpOptions::parse_each(&bytes).ok());
        }

        #[test]
        fn parse_arbitrary_options_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = TcpOptions::parse(&bytes);
        }
    }
}
