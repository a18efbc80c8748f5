//! The Internet checksum.
//!
//! * RFC 1071: the 16-bit ones' complement of the ones' complement sum. The sum does not depend
//!   on byte order (RFC 1071 §2(B)), so we add the buffer as native-endian 32-bit words into a
//!   64-bit accumulator (no carry handling in the loop, which the compiler vectorises), fold,
//!   and swap once at the end.
//! * RFC 1624: incremental update when a field changes (`HC' = ~(~HC + ~m + m')`, eqn. 3).
//! * RFC 793 §3.1 / RFC 768: the IPv4 pseudo-header for TCP and UDP.
//!
//! Sums are carried as folded `u16` values in network order ("partial sums"), combined with
//! [`combine`], and complemented once with [`finish`].

use core::net::{IpAddr, Ipv4Addr};

/// Fold a 64-bit accumulator of native-endian 16-bit words to 16 bits (end-around carry).
#[inline]
fn fold(mut acc: u64) -> u16 {
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// The ones' complement sum of `data` as 16-bit big-endian words, folded to 16 bits.
///
/// An odd final byte is padded with a zero byte on the right (RFC 1071 §4.1).
#[inline]
pub fn sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    // Two accumulators halve the dependency chain; each can take 2^32 words without overflow,
    // far beyond any frame.
    let mut acc2: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        acc += u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) as u64;
        acc2 += u32::from_ne_bytes([c[4], c[5], c[6], c[7]]) as u64;
    }
    acc += acc2;
    let mut rest = chunks.remainder();
    if rest.len() >= 4 {
        acc += u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as u64;
        rest = &rest[4..];
    }
    if rest.len() >= 2 {
        acc += u16::from_ne_bytes([rest[0], rest[1]]) as u64;
        rest = &rest[2..];
    }
    if let [last] = rest {
        acc += u16::from_ne_bytes([*last, 0]) as u64;
    }
    // The sum was taken in native order; one swap makes it the network-order sum.
    u16::from_be(fold(acc))
}

/// Ones' complement addition of partial sums.
#[inline]
pub fn combine(sums: &[u16]) -> u16 {
    let acc: u64 = sums.iter().map(|&s| s as u64).sum();
    fold(acc)
}

/// The checksum field value for a finished sum.
#[inline]
pub fn finish(sum: u16) -> u16 {
    !sum
}

/// The Internet checksum of `data` (RFC 1071): `finish(sum(data))`.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(data))
}

/// Partial sum of the IPv4 pseudo-header (RFC 9293 §3.1, RFC 768): source, destination,
/// zero, protocol, and the TCP/UDP length.
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u16 {
    let s = src.octets();
    let d = dst.octets();
    let acc = u16::from_be_bytes([s[0], s[1]]) as u64
        + u16::from_be_bytes([s[2], s[3]]) as u64
        + u16::from_be_bytes([d[0], d[1]]) as u64
        + u16::from_be_bytes([d[2], d[3]]) as u64
        + protocol as u64
        + length as u64;
    fold(acc)
}

/// The pseudo-header of either family: RFC 9293 §3.1 over IPv4, RFC 8200 §8.1 over IPv6 (an
/// IPv4 address paired with an IPv6 one is taken as IPv4-mapped; a packet never has both).
pub fn pseudo_header(src: IpAddr, dst: IpAddr, protocol: u8, length: u16) -> u16 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_header_v4(s, d, protocol, length),
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            super::ipv6::pseudo_header_v6(v6(s), v6(d), protocol, length.into())
        }
    }
}

/// RFC 1624 eqn. 3: the new checksum field after a 16-bit word of the covered data changed
/// from `old` to `new`. `HC' = ~(~HC + ~m + m')`. Never produces the -0 anomaly of eqn. 2.
#[inline]
pub fn update16(field: u16, old: u16, new: u16) -> u16 {
    !combine(&[!field, !old, new])
}

/// RFC 1624 for a 32-bit field (an address, a sequence number): two 16-bit updates at once.
#[inline]
pub fn update32(field: u16, old: u32, new: u32) -> u16 {
    !combine(&[!field, !((old >> 16) as u16), !(old as u16), (new >> 16) as u16, new as u16])
}

/// The simplest correct implementation, kept as the reference the tests and the benchmark
/// compare [`sum`] against.
pub fn sum_reference(data: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    for pair in data.chunks(2) {
        let word =
            if pair.len() == 2 { u16::from_be_bytes([pair[0], pair[1]]) } else { u16::from_be_bytes([pair[0], 0]) };
        acc += word as u32;
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 1071 §3, the worked example: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2
    /// (the carries 2 are folded back in), so the checksum is ~0xddf2 = 0x220d.
    #[test]
    fn rfc1071_worked_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(sum_reference(&data), 0xddf2);
        assert_eq!(checksum(&data), 0x220d);
    }

    #[test]
    fn odd_length_pads_right() {
        // 0xab alone counts as the word 0xab00.
        assert_eq!(sum(&[0xab]), 0xab00);
        assert_eq!(sum(&[0x00, 0x01, 0xab]), 0xab01);
    }

    #[test]
    fn buffer_with_its_checksum_sums_to_ffff() {
        let mut data = [0x45u8, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 0x40, 0x01, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2];
        let c = checksum(&data);
        data[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(sum(&data), 0xffff);
    }

    proptest! {
        #[test]
        fn fast_sum_equals_reference(data in proptest::collection::vec(any::<u8>(), 0..3000),
                                     skip in 0usize..8) {
            // Unaligned starts too: the fast path reads unaligned words.
            let d = &data[skip.min(data.len())..];
            prop_assert_eq!(combine(&[sum(d)]), combine(&[sum_reference(d)]));
        }

        #[test]
        fn split_sums_combine(data in proptest::collection::vec(any::<u8>(), 0..600), cut in 0usize..300) {
            // Splitting at an even offset and combining equals the whole sum.
            let cut = (cut.min(data.len())) & !1;
            let whole = sum(&data);
            let parts = combine(&[sum(&data[..cut]), sum(&data[cut..])]);
            prop_assert_eq!(checksum_eq(whole), checksum_eq(parts));
        }

        #[test]
        fn incremental_update16_equals_recompute(mut data in proptest::collection::vec(any::<u8>(), 2..200),
                                                 at in 0usize..100, new in any::<u16>()) {
            let at = (at % (data.len() / 2)) * 2;
            let before = checksum(&data);
            let old = u16::from_be_bytes([data[at], data[at + 1]]);
            data[at..at + 2].copy_from_slice(&new.to_be_bytes());
            let after = checksum(&data);
            prop_assert_eq!(checksum_eq(!update16(before, old, new)), checksum_eq(!after));
        }

        #[test]
        fn incremental_update32_equals_recompute(mut data in proptest::collection::vec(any::<u8>(), 4..200),
                                                 at in 0usize..100, new in any::<u32>()) {
            let at = (at % (data.len() / 4)) * 4;
            let before = checksum(&data);
            let old = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
            data[at..at + 4].copy_from_slice(&new.to_be_bytes());
            let after = checksum(&data);
            prop_assert_eq!(checksum_eq(!update32(before, old, new)), checksum_eq(!after));
        }
    }

    /// In ones' complement 0x0000 and 0xffff are both zero; compare sums modulo that.
    fn checksum_eq(s: u16) -> u16 {
        if s == 0xffff {
            0
        } else {
            s
        }
    }
}
