//! ICMP lines: packetdrill's names for ICMP and ICMPv6 types and codes, and the error messages
//! the script's peer (or a router on its path) sends about one of the stack's segments.

use crate::wire::{checksum, ipv6, IpProtocol, Ipv4Repr, Ipv6Repr};
use core::net::IpAddr;

/// Names and values of codes.
type Codes = &'static [(&'static str, u8)];

/// ICMPv4 types by packetdrill's names (its icmp_packet.c, RFC 792), with their code tables.
const V4_TYPES: &[(&str, u8, Codes)] = &[
    ("echo_reply", 0, &[]),
    ("unreachable", 3, V4_UNREACHABLE),
    ("source_quench", 4, &[]),
    ("redirect", 5, &[]),
    ("echo_request", 8, &[]),
    (
        "time_exceeded",
        11,
        &[
            ("ttl_exceeded_in_transit", 0),
            ("exceeded_ttl", 0),
            ("frag_reassembly_time_exceeded", 1),
            ("frag_reass_exceeded", 1),
            ("exceeded_frag_time", 1),
        ],
    ),
    ("parameter_problem", 12, &[]),
    ("timestamp_request", 13, &[]),
    ("timestamp_reply", 14, &[]),
    ("information_request", 15, &[]),
    ("information_reply", 16, &[]),
    ("address_mask_request", 17, &[]),
    ("address_mask_reply", 18, &[]),
];

/// Destination-unreachable codes (RFC 792, RFC 1122 §3.2.2.1, RFC 1812 §5.2.7.1).
const V4_UNREACHABLE: Codes = &[
    ("net_unreachable", 0),
    ("host_unreachable", 1),
    ("protocol_unreachable", 2),
    ("port_unreachable", 3),
    ("frag_needed", 4),
    ("source_route_failed", 5),
    ("net_unknown", 6),
    ("host_unknown", 7),
    ("source_host_isolated", 8),
    ("net_prohibited", 9),
    ("host_prohibited", 10),
    ("net_unreachable_for_tos", 11),
    ("host_unreachable_for_tos", 12),
    ("packet_filtered", 13),
    ("precedence_violation", 14),
    ("precedence_cutoff", 15),
];

/// ICMPv6 types by packetdrill's names (RFC 4443).
const V6_TYPES: &[(&str, u8, Codes)] = &[
    (
        "unreachable",
        1,
        &[
            ("net_unreachable", 0),
            ("no_route", 0),
            ("admin_prohibited", 1),
            ("not_neighbour", 2),
            ("address_unreachable", 3),
            ("port_unreachable", 4),
        ],
    ),
    ("packet_too_big", 2, &[]),
    ("time_exceeded", 3, &[("exceeded_hop_limit", 0), ("exceeded_frag_time", 1)]),
    ("parameter_problem", 4, &[("header_field", 0), ("unknown_next_header", 1), ("unknown_option", 2)]),
    ("echo_request", 128, &[]),
    ("echo_reply", 129, &[]),
];

/// The type and code bytes a line names: a table name, or `type_N` / `code_N` (packetdrill's
/// tcpdump-style notation); no code is code 0.
pub fn type_and_code(kind: &str, code: Option<&str>, v6: bool) -> Result<(u8, u8), String> {
    let table = if v6 { V6_TYPES } else { V4_TYPES };
    let family = if v6 { "ICMPv6" } else { "ICMP" };
    let numbered = |s: &str, prefix: &str| s.strip_prefix(prefix).and_then(|n| n.parse::<u8>().ok());
    let (ty, codes) = match table.iter().find(|(name, _, _)| *name == kind) {
        Some(&(_, ty, codes)) => (ty, codes),
        None => match numbered(kind, "type_") {
            Some(ty) => (ty, &[][..]),
            None => return Err(format!("unknown {family} type `{kind}`")),
        },
    };
    let code = match code {
        None => 0,
        Some(c) => match codes.iter().find(|(name, _)| *name == c) {
            Some(&(_, v)) => v,
            None => numbered(c, "code_")
                .or_else(|| c.parse().ok())
                .ok_or_else(|| format!("unknown code `{c}` for {family} `{kind}`"))?,
        },
    };
    Ok((ty, code))
}

/// What an ICMP error quotes: one of the stack's segments, from `ips.0` to `ips.1`, between
/// these ports, at live sequence number `seq`, with `len` bytes of payload.
#[derive(Debug, Clone, Copy)]
pub struct Quoted {
    pub ips: (IpAddr, IpAddr),
    pub local_port: u16,
    pub remote_port: u16,
    pub seq: u32,
    pub len: u32,
}

/// The ICMP (or ICMPv6) message, checksum included, that the peer at `q.ips.1` sends to the
/// stack: the header with `mtu` where the type carries one (fragmentation needed, packet too
/// big), then the quoted IP header and the first 8 bytes of the TCP header (RFC 792; RFC
/// 4443 §2.4(c) allows more, packetdrill sends this much).
pub fn message(ty: u8, code: u8, mtu: Option<u32>, q: Quoted) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0, 0, 0, 0, 0];
    let mtu = mtu.unwrap_or(0);
    match q.ips.0 {
        IpAddr::V4(_) if ty == 3 && code == 4 => m[6..8].copy_from_slice(&(mtu.min(0xffff) as u16).to_be_bytes()),
        IpAddr::V6(_) if ty == 2 => m[4..8].copy_from_slice(&mtu.to_be_bytes()),
        _ => {}
    }
    let tcp_len = 20 + q.len as usize;
    let mut quoted = vec![0u8; 48];
    let ip_len = match q.ips {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let ip = Ipv4Repr {
                src,
                dst,
                protocol: IpProtocol::Tcp,
                payload_len: tcp_len,
                ttl: 64,
                ident: 0,
                dont_frag: true,
                dscp_ecn: 0,
            };
            let _ = ip.emit(&mut quoted);
            crate::wire::ipv4::HEADER_LEN
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let ip = Ipv6Repr {
                src,
                dst,
                next_header: IpProtocol::Tcp,
                payload_len: tcp_len,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
            };
            let _ = ip.emit(&mut quoted);
            ipv6::HEADER_LEN
        }
        _ => 0,
    };
    quoted.truncate(ip_len + 8);
    quoted[ip_len..ip_len + 2].copy_from_slice(&q.local_port.to_be_bytes());
    quoted[ip_len + 2..ip_len + 4].copy_from_slice(&q.remote_port.to_be_bytes());
    quoted[ip_len + 4..ip_len + 8].copy_from_slice(&q.seq.to_be_bytes());
    m.extend_from_slice(&quoted);
    // The sender is the peer (ips.1), the destination the stack (ips.0).
    let sum = match q.ips {
        (IpAddr::V6(local), IpAddr::V6(peer)) => {
            checksum::combine(&[ipv6::pseudo_header_v6(peer, local, 58, m.len() as u32), checksum::sum(&m)])
        }
        _ => checksum::sum(&m),
    };
    m[2..4].copy_from_slice(&checksum::finish(sum).to_be_bytes());
    m
}
