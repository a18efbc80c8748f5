//! Neighbour Discovery messages (RFC 4861 §4): router solicitation and advertisement,
//! neighbour solicitation and advertisement, carried in ICMPv6 (types 133–136; redirect, 137,
//! is [`Error::Unsupported`]). Options (§4.6): source and target link-layer address (Ethernet),
//! MTU, prefix information, and the nonce of enhanced duplicate address detection (RFC 7527
//! §4, which Linux puts in its DAD probes); others are skipped by their length.
//!
//! Validity (§6.1.1, §7.1.1, §7.1.2) that the message alone can show is checked here: code
//! 0, the fixed part present, every option of non-zero length and inside the message, a
//! solicitation's target not multicast. What needs the IP header (hop limit 255, a
//! link-local source for RAs, the unspecified source of DAD) is the stack's to check.

use super::checksum;
use super::icmpv6::{HEADER_LEN as ICMPV6_HEADER_LEN, NEXT_HEADER};
use super::ipv6::pseudo_header_v6;
use super::{put16, Error, MacAddr, Result};
use core::net::Ipv6Addr;

const TYPE_RS: u8 = 133;
const TYPE_RA: u8 = 134;
const TYPE_NS: u8 = 135;
const TYPE_NA: u8 = 136;
const TYPE_REDIRECT: u8 = 137;

const OPT_SLLA: u8 = 1;
const OPT_TLLA: u8 = 2;
const OPT_PREFIX: u8 = 3;
const OPT_MTU: u8 = 5;
/// RFC 3971 §5.3.2's Nonce option, as RFC 7527 §4 uses it.
const OPT_NONCE: u8 = 14;

/// Options read at most: a message with more is malformed (a real one has a handful), which
/// bounds the walk over untrusted bytes.
pub const MAX_OPTIONS: usize = 16;

/// Prefix Information (§4.6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixInfo {
    /// Number of leading bits of `prefix` that are valid (0–128).
    pub prefix_len: u8,
    /// L: the prefix is on-link.
    pub on_link: bool,
    /// A: usable for stateless address autoconfiguration (RFC 4862).
    pub autonomous: bool,
    /// Seconds; `u32::MAX` is infinity.
    pub valid_lifetime: u32,
    /// Seconds the addresses made from the prefix stay preferred; `u32::MAX` is infinity.
    pub preferred_lifetime: u32,
    /// The prefix; bits past `prefix_len` are ignored.
    pub prefix: Ipv6Addr,
}

/// The options a host acts on (the first of each kind; §4.6 allows the rest to be ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NdpOptions {
    /// Source link-layer address option (§4.6.1): the sender's MAC address.
    pub source_ll: Option<MacAddr>,
    /// Target link-layer address option (§4.6.1): the target's MAC address.
    pub target_ll: Option<MacAddr>,
    /// MTU option (§4.6.4): the link's MTU, in bytes.
    pub mtu: Option<u32>,
    /// Prefix information option (§4.6.2).
    pub prefix: Option<PrefixInfo>,
    /// RFC 7527 §4: a DAD probe's nonce (six bytes, the option's shortest and Linux's form;
    /// longer nonces are skipped as unknown). A probe that comes back with our own nonce is
    /// our own, looped back, not a duplicate.
    pub nonce: Option<[u8; 6]>,
}

impl NdpOptions {
    fn parse(mut b: &[u8]) -> Result<NdpOptions> {
        let mut o = NdpOptions::default();
        for _ in 0..=MAX_OPTIONS {
            if b.is_empty() {
                return Ok(o);
            }
            // §4.6: type, length in units of 8 octets; "nodes MUST silently discard an ND
            // packet that contains an option with length zero".
            let (ty, units) = (b[0], usize::from(*b.get(1).ok_or(Error::Malformed)?));
            let len = units * 8;
            if len == 0 || len > b.len() {
                return Err(Error::Malformed);
            }
            let v = &b[..len];
            match ty {
                OPT_SLLA if o.source_ll.is_none() => o.source_ll = Some(MacAddr::from_bytes(&v[2..8])),
                OPT_TLLA if o.target_ll.is_none() => o.target_ll = Some(MacAddr::from_bytes(&v[2..8])),
                OPT_MTU if o.mtu.is_none() && len == 8 => o.mtu = Some(u32::from_be_bytes([v[4], v[5], v[6], v[7]])),
                OPT_NONCE if o.nonce.is_none() && len == 8 => {
                    let mut n = [0u8; 6];
                    n.copy_from_slice(&v[2..8]);
                    o.nonce = Some(n);
                }
                OPT_PREFIX if o.prefix.is_none() => {
                    if len != 32 {
                        return Err(Error::Malformed);
                    }
                    let mut p = [0u8; 16];
                    p.copy_from_slice(&v[16..32]);
                    o.prefix = Some(PrefixInfo {
                        prefix_len: v[2],
                        on_link: v[3] & 0x80 != 0,
                        autonomous: v[3] & 0x40 != 0,
                        valid_lifetime: u32::from_be_bytes([v[4], v[5], v[6], v[7]]),
                        preferred_lifetime: u32::from_be_bytes([v[8], v[9], v[10], v[11]]),
                        prefix: Ipv6Addr::from(p),
                    });
                }
                _ => {} // unknown, or a repeat: skipped (§4.6)
            }
            b = &b[len..];
        }
        Err(Error::Malformed)
    }

    fn buffer_len(&self) -> usize {
        8 * (usize::from(self.source_ll.is_some())
            + usize::from(self.target_ll.is_some())
            + usize::from(self.mtu.is_some())
            + usize::from(self.nonce.is_some()))
            + if self.prefix.is_some() { 32 } else { 0 }
    }

    fn emit(&self, b: &mut [u8]) -> usize {
        let mut at = 0;
        for (ty, mac) in [(OPT_SLLA, self.source_ll), (OPT_TLLA, self.target_ll)] {
            if let Some(m) = mac {
                b[at] = ty;
                b[at + 1] = 1;
                b[at + 2..at + 8].copy_from_slice(&m.0);
                at += 8;
            }
        }
        if let Some(mtu) = self.mtu {
            b[at..at + 4].copy_from_slice(&[OPT_MTU, 1, 0, 0]);
            b[at + 4..at + 8].copy_from_slice(&mtu.to_be_bytes());
            at += 8;
        }
        if let Some(p) = self.prefix {
            let v = &mut b[at..at + 32];
            v[0] = OPT_PREFIX;
            v[1] = 4;
            v[2] = p.prefix_len;
            v[3] = (u8::from(p.on_link) << 7) | (u8::from(p.autonomous) << 6);
            v[4..8].copy_from_slice(&p.valid_lifetime.to_be_bytes());
            v[8..12].copy_from_slice(&p.preferred_lifetime.to_be_bytes());
            v[12..16].fill(0);
            v[16..32].copy_from_slice(&p.prefix.octets());
            at += 32;
        }
        if let Some(n) = self.nonce {
            b[at] = OPT_NONCE;
            b[at + 1] = 1;
            b[at + 2..at + 8].copy_from_slice(&n);
            at += 8;
        }
        at
    }
}

/// A Neighbour Discovery message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdpRepr {
    /// Type 133: router solicitation (§4.1).
    RouterSolicit {
        /// Its options (a source link-layer address, if any).
        options: NdpOptions,
    },
    /// Type 134: router advertisement (§4.2).
    RouterAdvert {
        /// Cur Hop Limit: the hop limit hosts should use; 0 is unspecified.
        hop_limit: u8,
        /// M (managed) and O (other configuration) flags, as the byte carries them.
        flags: u8,
        /// Seconds; 0: not a default router.
        router_lifetime: u16,
        /// Reachable Time, in milliseconds; 0 is unspecified.
        reachable_time_ms: u32,
        /// Retrans Timer, in milliseconds; 0 is unspecified.
        retrans_time_ms: u32,
        /// Its options (source link-layer address, MTU, prefix information).
        options: NdpOptions,
    },
    /// Type 135: neighbour solicitation (§4.3).
    NeighborSolicit {
        /// The address being resolved or checked for duplicates; never multicast.
        target: Ipv6Addr,
        /// Its options (source link-layer address, DAD nonce).
        options: NdpOptions,
    },
    /// Type 136: neighbour advertisement (§4.4).
    NeighborAdvert {
        /// R: the sender is a router.
        router: bool,
        /// S: sent in answer to a solicitation.
        solicited: bool,
        /// O: the advertisement should override a cached link-layer address.
        override_: bool,
        /// The address the advertisement is about.
        target: Ipv6Addr,
        /// Its options (target link-layer address).
        options: NdpOptions,
    },
}

fn addr_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(a)
}

impl NdpRepr {
    /// Parse a whole ICMPv6 message (header included) whose checksum the caller verified.
    pub fn parse(msg: &[u8]) -> Result<NdpRepr> {
        if msg.len() < ICMPV6_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let (ty, code) = (msg[0], msg[1]);
        if !(TYPE_RS..=TYPE_REDIRECT).contains(&ty) {
            return Err(Error::Unsupported);
        }
        if code != 0 {
            return Err(Error::Malformed);
        }
        let fixed = match ty {
            TYPE_RS => 8,
            TYPE_RA => 16,
            TYPE_NS | TYPE_NA => 24,
            _ => return Err(Error::Unsupported), // redirect
        };
        if msg.len() < fixed {
            return Err(Error::Truncated);
        }
        let options = NdpOptions::parse(&msg[fixed..])?;
        Ok(match ty {
            TYPE_RS => NdpRepr::RouterSolicit { options },
            TYPE_RA => NdpRepr::RouterAdvert {
                hop_limit: msg[4],
                flags: msg[5],
                router_lifetime: u16::from_be_bytes([msg[6], msg[7]]),
                reachable_time_ms: u32::from_be_bytes([msg[8], msg[9], msg[10], msg[11]]),
                retrans_time_ms: u32::from_be_bytes([msg[12], msg[13], msg[14], msg[15]]),
                options,
            },
            TYPE_NS => {
                let target = addr_at(msg, 8);
                if target.is_multicast() {
                    return Err(Error::Malformed); // §7.1.1
                }
                NdpRepr::NeighborSolicit { target, options }
            }
            _ => NdpRepr::NeighborAdvert {
                router: msg[4] & 0x80 != 0,
                solicited: msg[4] & 0x40 != 0,
                override_: msg[4] & 0x20 != 0,
                target: addr_at(msg, 8),
                options,
            },
        })
    }

    fn fixed_len(&self) -> usize {
        match self {
            NdpRepr::RouterSolicit { .. } => 8,
            NdpRepr::RouterAdvert { .. } => 16,
            _ => 24,
        }
    }

    fn options(&self) -> &NdpOptions {
        match self {
            NdpRepr::RouterSolicit { options }
            | NdpRepr::RouterAdvert { options, .. }
            | NdpRepr::NeighborSolicit { options, .. }
            | NdpRepr::NeighborAdvert { options, .. } => options,
        }
    }

    /// Length of the whole ICMPv6 message.
    pub fn buffer_len(&self) -> usize {
        self.fixed_len() + self.options().buffer_len()
    }

    /// Write the whole ICMPv6 message from `src` to `dst`, checksum included.
    pub fn emit(&self, buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<usize> {
        let len = self.buffer_len();
        if buf.len() < len {
            return Err(Error::BufferTooSmall);
        }
        let b = &mut buf[..len];
        b[..self.fixed_len()].fill(0);
        match *self {
            NdpRepr::RouterSolicit { .. } => b[0] = TYPE_RS,
            NdpRepr::RouterAdvert { hop_limit, flags, router_lifetime, reachable_time_ms, retrans_time_ms, .. } => {
                b[0] = TYPE_RA;
                b[4] = hop_limit;
                b[5] = flags;
                b[6..8].copy_from_slice(&router_lifetime.to_be_bytes());
                b[8..12].copy_from_slice(&reachable_time_ms.to_be_bytes());
                b[12..16].copy_from_slice(&retrans_time_ms.to_be_bytes());
            }
            NdpRepr::NeighborSolicit { target, .. } => {
                b[0] = TYPE_NS;
                b[8..24].copy_from_slice(&target.octets());
            }
            NdpRepr::NeighborAdvert { router, solicited, override_, target, .. } => {
                b[0] = TYPE_NA;
                b[4] = (u8::from(router) << 7) | (u8::from(solicited) << 6) | (u8::from(override_) << 5);
                b[8..24].copy_from_slice(&target.octets());
            }
        }
        let fixed = self.fixed_len();
        self.options().emit(&mut b[fixed..]);
        let ph = pseudo_header_v6(src, dst, NEXT_HEADER, len as u32);
        let c = checksum::finish(checksum::combine(&[ph, checksum::sum(b)]));
        put16(b, 2, c);
        Ok(len)
    }
}

/// The solicited-node multicast address of `addr` (RFC 4291 §2.7.1): ff02::1:ffXX:XXXX with
/// its low 24 bits, where neighbour solicitations for it are sent.
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Icmpv6Packet;
    use proptest::prelude::*;

    const A: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    const B: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0xab, 0xcdef);
    const MAC: MacAddr = MacAddr([2, 0, 0xc6, 0x12, 0, 1]);

    fn round_trip(r: NdpRepr) {
        let mut b = vec![0u8; r.buffer_len()];
        assert_eq!(r.emit(&mut b, A, B), Ok(b.len()));
        assert!(Icmpv6Packet::new_checked(&b[..]).unwrap().verify_checksum(A, B));
        assert_eq!(NdpRepr::parse(&b), Ok(r));
    }

    #[test]
    fn every_message_round_trips() {
        let with = |s, t| NdpOptions { source_ll: s, target_ll: t, ..NdpOptions::default() };
        round_trip(NdpRepr::RouterSolicit { options: with(Some(MAC), None) });
        round_trip(NdpRepr::NeighborSolicit { target: B, options: with(Some(MAC), None) });
        // A DAD probe (RFC 4862 §5.4.2) with RFC 7527's nonce, as Linux sends it.
        round_trip(NdpRepr::NeighborSolicit {
            target: B,
            options: NdpOptions { nonce: Some([1, 2, 3, 4, 5, 6]), ..NdpOptions::default() },
        });
        round_trip(NdpRepr::NeighborAdvert {
            router: false,
            solicited: true,
            override_: true,
            target: B,
            options: with(None, Some(MAC)),
        });
        round_trip(NdpRepr::RouterAdvert {
            hop_limit: 64,
            flags: 0x40,
            router_lifetime: 1800,
            reachable_time_ms: 30_000,
            retrans_time_ms: 1000,
            options: NdpOptions {
                source_ll: Some(MAC),
                target_ll: None,
                mtu: Some(9000),
                prefix: Some(PrefixInfo {
                    prefix_len: 64,
                    on_link: true,
                    autonomous: true,
                    valid_lifetime: u32::MAX,
                    preferred_lifetime: 604_800,
                    prefix: Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0),
                }),
                nonce: None,
            },
        });
    }

    #[test]
    fn the_wire_layout_is_rfc_4861s() {
        let r = NdpRepr::NeighborSolicit {
            target: B,
            options: NdpOptions { source_ll: Some(MAC), ..NdpOptions::default() },
        };
        let mut b = [0u8; 32];
        r.emit(&mut b, A, solicited_node(B)).unwrap();
        assert_eq!(b[0], 135);
        assert_eq!(&b[8..24], &B.octets());
        assert_eq!(&b[24..32], &[1, 1, 2, 0, 0xc6, 0x12, 0, 1], "source link-layer address option");
        assert_eq!(solicited_node(B), "ff02::1:ffab:cdef".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn invalid_messages_are_refused() {
        let mut ns = [0u8; 32];
        NdpRepr::NeighborSolicit { target: B, options: NdpOptions { source_ll: Some(MAC), ..Default::default() } }
            .emit(&mut ns, A, B)
            .unwrap();
        let mut zero_len = ns;
        zero_len[25] = 0;
        assert_eq!(NdpRepr::parse(&zero_len), Err(Error::Malformed), "§4.6: an option of length zero");
        let mut too_long = ns;
        too_long[25] = 2;
        assert_eq!(NdpRepr::parse(&too_long), Err(Error::Malformed));
        let mut code = ns;
        code[1] = 1;
        assert_eq!(NdpRepr::parse(&code), Err(Error::Malformed));
        let mut multicast = ns;
        multicast[8] = 0xff;
        assert_eq!(NdpRepr::parse(&multicast), Err(Error::Malformed), "§7.1.1: a multicast target");
        assert_eq!(NdpRepr::parse(&ns[..20]), Err(Error::Truncated));
        assert_eq!(NdpRepr::parse(&[137, 0, 0, 0, 0, 0, 0, 0]), Err(Error::Unsupported), "redirect");
        assert_eq!(NdpRepr::parse(&[128, 0, 0, 0, 0, 0, 0, 0]), Err(Error::Unsupported), "not NDP");
        // Unknown options are skipped by length; more than MAX_OPTIONS is malformed.
        let mut many = ns[..24].to_vec();
        for _ in 0..MAX_OPTIONS + 1 {
            many.extend_from_slice(&[200, 1, 0, 0, 0, 0, 0, 0]);
        }
        assert_eq!(NdpRepr::parse(&many[..24 + 8 * 3]).map(|_| ()), Ok(()));
        assert_eq!(NdpRepr::parse(&many), Err(Error::Malformed));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(r) = NdpRepr::parse(&b) {
                let mut out = vec![0u8; r.buffer_len()];
                r.emit(&mut out, A, B).unwrap();
                prop_assert_eq!(NdpRepr::parse(&out), Ok(r));
            }
        }
    }
}
