//! The Toeplitz hash that NICs use for receive-side scaling (RSS), as specified by Microsoft
//! ("Verifying the RSS Hash Calculation"). The stack uses it to predict which receive queue a
//! flow's packets land on, so that an active open can pick a local port whose replies come
//! back to the opening core (the way mTCP, F-Stack and Seastar do it).
//!
//! Input for TCP over IPv4 is 12 bytes in network order: source address, destination
//! address, source port, destination port (as seen on the *received* packet).

use core::net::Ipv4Addr;

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

/// A Toeplitz hasher for the IPv4 TCP/UDP 4-tuple with a per-key lookup table: 12 table
/// lookups and XORs per hash instead of 96 conditional XORs.
#[derive(Clone)]
pub struct Toeplitz4Tuple {
    table: Box<[[u32; 256]; 12]>,
}

impl core::fmt::Debug for Toeplitz4Tuple {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Toeplitz4Tuple")
    }
}

impl Toeplitz4Tuple {
    /// `key` must be at least 16 bytes (12 input bytes + 4).
    pub fn new(key: &[u8]) -> Toeplitz4Tuple {
        assert!(key.len() >= 16, "an RSS key covers the input plus 4 bytes");
        let mut table = Box::new([[0u32; 256]; 12]);
        for (pos, row) in table.iter_mut().enumerate() {
            for (byte, slot) in row.iter_mut().enumerate() {
                let mut input = [0u8; 12];
                input[pos] = byte as u8;
                *slot = hash(key, &input);
            }
        }
        Toeplitz4Tuple { table }
    }

    /// The RSS hash of a packet from `src:sport` to `dst:dport`.
    pub fn hash(&self, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> u32 {
        let mut input = [0u8; 12];
        input[0..4].copy_from_slice(&src.octets());
        input[4..8].copy_from_slice(&dst.octets());
        input[8..10].copy_from_slice(&sport.to_be_bytes());
        input[10..12].copy_from_slice(&dport.to_be_bytes());
        input.iter().zip(self.table.iter()).fold(0, |acc, (&b, row)| acc ^ row[b as usize])
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

    proptest! {
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
