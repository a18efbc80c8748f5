//! The Toeplitz hash that NICs use for receive-side scaling (RSS), as specified by Microsoft
//! ("Verifying the RSS Hash Calculation"). The stack uses it to predict which receive queue a
//! flow's packets land on, so that an active open can pick a local port whose replies come
//! back to the opening core (the way mTCP, F-Stack and Seastar do it).
//!
//! Input for TCP is, in network order, the source address, the destination address, the
//! source port and the destination port (as seen on the *received* packet): 12 bytes over
//! IPv4, 36 over IPv6.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Input bytes of the longest tuple (IPv6 addresses and two ports).
const MAX_INPUT: usize = 36;

/// The key from Microsoft's verification suite; also the default key of many drivers.
pub const MICROSOFT_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b,
    0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac,
    0x01, 0xfa,
];

/// Bit-by-bit Toeplitz hash of `input` under `key`: for every set bit of the input (most
/// significant first), XOR in the 32 key bits starting at that bit position. `key` must be at
/// least `input.len() + 4` bytes long; extra input bytes beyond that are ignored.
pub fn hash(key: &[u8], input: &[u8]) -> u32 {
    let n = input.len().min(key.len().saturating_sub(4));
    let mut result = 0u32;
    for (i, &byte) in input[..n].iter().enumerate() {
        // The 64-bit window of key bits starting at byte i.
        let mut window = [0u8; 8];
        let avail = (key.len() - i).min(8);
        window[..avail].copy_from_slice(&key[i..i + avail]);
        let w = u64::from_be_bytes(window);
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                result ^= (w >> (32 - bit)) as u32;
            }
        }
    }
    result
}

/// A Toeplitz hasher for the TCP/UDP 4-tuple, IPv4 or IPv6, with a per-key lookup table:
/// one lookup and XOR per input byte (12 for IPv4, 36 for IPv6) instead of eight conditional
/// XORs.
#[derive(Clone)]
pub struct Toeplitz4Tuple {
    table: Box<[[u32; 256]; MAX_INPUT]>,
}

impl core::fmt::Debug for Toeplitz4Tuple {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Toeplitz4Tuple")
    }
}

impl Toeplitz4Tuple {
    /// `key` must be at least 16 bytes (12 input bytes + 4); IPv6 tuples need 40 (NICs' keys
    /// are 40 bytes or more), and with a shorter key the bytes past it count for nothing, as
    /// in [`hash`].
    pub fn new(key: &[u8]) -> Toeplitz4Tuple {
        assert!(key.len() >= 16, "an RSS key covers the input plus 4 bytes");
        let mut table = Box::new([[0u32; 256]; MAX_INPUT]);
        for (pos, row) in table.iter_mut().enumerate() {
            for (byte, slot) in row.iter_mut().enumerate() {
                let mut input = [0u8; MAX_INPUT];
                input[pos] = byte as u8;
                *slot = hash(key, &input);
            }
        }
        Toeplitz4Tuple { table }
    }

    fn fold(&self, input: &[u8]) -> u32 {
        input.iter().zip(self.table.iter()).fold(0, |acc, (&b, row)| acc ^ row[b as usize])
    }

    /// The RSS hash of an IPv6 packet from `src:sport` to `dst:dport`.
    pub fn hash_v6(&self, src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16) -> u32 {
        let mut input = [0u8; MAX_INPUT];
        input[0..16].copy_from_slice(&src.octets());
        input[16..32].copy_from_slice(&dst.octets());
        input[32..34].copy_from_slice(&sport.to_be_bytes());
        input[34..36].copy_from_slice(&dport.to_be_bytes());
        self.fold(&input)
    }

    /// The RSS hash of a packet of either family (both addresses of the same one; an IPv4
    /// address paired with an IPv6 one is taken as IPv4-mapped, RFC 4291 §2.5.5.2).
    pub fn hash_ip(&self, src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> u32 {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => self.hash(s, d, sport, dport),
            (s, d) => self.hash_v6(v6(s), v6(d), sport, dport),
        }
    }

    /// The RSS hash of a packet from `src:sport` to `dst:dport`.
    pub fn hash(&self, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> u32 {
        let mut input = [0u8; 12];
        input[0..4].copy_from_slice(&src.octets());
        input[4..8].copy_from_slice(&dst.octets());
        input[8..10].copy_from_slice(&sport.to_be_bytes());
        input[10..12].copy_from_slice(&dport.to_be_bytes());
        self.fold(&input)
    }
}

fn v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One row of Microsoft's verification table, IPv4: (destination, dport, source, sport,
    /// IPv4-only hash, IPv4+TCP hash).
    type Vector = ([u8; 4], u16, [u8; 4], u16, u32, u32);
    const VECTORS: [Vector; 5] = [
        ([161, 142, 100, 80], 1766, [66, 9, 149, 187], 2794, 0x323e8fc2, 0x51ccc178),
        ([65, 69, 140, 83], 4739, [199, 92, 111, 2], 14230, 0xd718262a, 0xc626b0ea),
        ([12, 22, 207, 184], 38024, [24, 19, 198, 95], 12898, 0xd2d0a5de, 0x5c2b394a),
        ([209, 142, 163, 6], 2217, [38, 27, 205, 30], 48228, 0x82989176, 0xafc7327f),
        ([202, 188, 127, 2], 1303, [153, 39, 163, 191], 44251, 0x5d1809c5, 0x10e828a2),
    ];

    #[test]
    fn microsoft_verification_vectors() {
        let t = Toeplitz4Tuple::new(&MICROSOFT_KEY);
        for (dst, dport, src, sport, ip_only, with_tcp) in VECTORS {
            let mut two = [0u8; 8];
            two[..4].copy_from_slice(&src);
            two[4..].copy_from_slice(&dst);
            assert_eq!(hash(&MICROSOFT_KEY, &two), ip_only, "IPv4-only {src:?} -> {dst:?}");
            let (s, d) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            assert_eq!(t.hash(s, d, sport, dport), with_tcp, "IPv4+TCP {s}:{sport} -> {d}:{dport}");
        }
    }

    /// Microsoft's IPv6 rows: (destination, dport, source, sport, IPv6-only hash, IPv6+TCP
    /// hash).
    const VECTORS_V6: [(&str, u16, &str, u16, u32, u32); 3] = [
        ("3ffe:2501:200:3::1", 1766, "3ffe:2501:200:1fff::7", 2794, 0x2cc18cd5, 0x40207d3d),
        ("ff02::1", 4739, "3ffe:501:8::260:97ff:fe40:efab", 14230, 0x0f0c461c, 0xdde51bbf),
        ("fe80::200:f8ff:fe21:67cf", 38024, "3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251, 0x4b61e985, 0x02d1feef),
    ];

    #[test]
    fn microsoft_verification_vectors_ipv6() {
        let t = Toeplitz4Tuple::new(&MICROSOFT_KEY);
        for (dst, dport, src, sport, ip_only, with_tcp) in VECTORS_V6 {
            let (s, d): (Ipv6Addr, Ipv6Addr) = (src.parse().unwrap(), dst.parse().unwrap());
            let mut two = [0u8; 32];
            two[..16].copy_from_slice(&s.octets());
            two[16..].copy_from_slice(&d.octets());
            assert_eq!(hash(&MICROSOFT_KEY, &two), ip_only, "IPv6-only {s} -> {d}");
            assert_eq!(t.hash_v6(s, d, sport, dport), with_tcp, "IPv6+TCP [{s}]:{sport} -> [{d}]:{dport}");
            assert_eq!(t.hash_ip(s.into(), d.into(), sport, dport), with_tcp);
        }
    }

    proptest! {
        #[test]
        fn table_equals_bitwise_ipv6(src in any::<u128>(), dst in any::<u128>(), sp in any::<u16>(), dp in any::<u16>()) {
            let t = Toeplitz4Tuple::new(&MICROSOFT_KEY);
            let mut input = [0u8; 36];
            input[0..16].copy_from_slice(&src.to_be_bytes());
            input[16..32].copy_from_slice(&dst.to_be_bytes());
            input[32..34].copy_from_slice(&sp.to_be_bytes());
            input[34..36].copy_from_slice(&dp.to_be_bytes());
            prop_assert_eq!(t.hash_v6(src.into(), dst.into(), sp, dp), hash(&MICROSOFT_KEY, &input));
        }

        #[test]
        fn table_equals_bitwise(src in any::<u32>(), dst in any::<u32>(), sp in any::<u16>(), dp in any::<u16>()) {
            let t = Toeplitz4Tuple::new(&MICROSOFT_KEY);
            let mut input = [0u8; 12];
            input[0..4].copy_from_slice(&src.to_be_bytes());
            input[4..8].copy_from_slice(&dst.to_be_bytes());
            input[8..10].copy_from_slice(&sp.to_be_bytes());
            input[10..12].copy_from_slice(&dp.to_be_bytes());
            prop_assert_eq!(t.hash(src.into(), dst.into(), sp, dp), hash(&MICROSOFT_KEY, &input));
        }
    }
}
