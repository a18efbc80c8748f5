#![no_main]
//! A whole frame through the single parse entry point the stack uses: Ethernet, ARP/IPv4,
//! ICMP/TCP/UDP. Both checksum modes; what parses must emit and parse back the same.
use libfuzzer_sys::fuzz_target;
use xtcp::wire::{FrameRepr, L4Repr, NetRepr, RxChecksum};

fuzz_target!(|data: &[u8]| {
    let _ = FrameRepr::parse(data, RxChecksum::Verify);
    // Give the IPv4 header a valid checksum so the fuzzer reaches the transport parsers.
    let mut fixed = data.to_vec();
    if fixed.len() > 14 && fixed[12..14] == [0x08, 0x00] {
        xtcp_fuzz::fix_ipv4_checksum(&mut fixed[14..]);
    }
    let data = &fixed[..];
    let Ok(mut r) = FrameRepr::parse(data, RxChecksum::TrustL4) else { return };
    let mut buf = vec![0u8; r.buffer_len()];
    r.emit(&mut buf).expect("buffer_len bytes suffice");
    let r2 = FrameRepr::parse(&buf, RxChecksum::Verify).expect("emitted frame parses");
    // By design, emit drops what the Repr does not keep: unknown TCP options and SACK blocks
    // that do not fit beside the others in Linux's layout, IPv4 options, Ethernet padding. The
    // IPv4 length then follows the transport layer as emitted.
    if let NetRepr::Ipv4 { ip, l4 } = &mut r.net {
        if let L4Repr::Tcp(t) = l4 {
            let cap = t.options.sack_capacity();
            t.options.sack.truncate(cap);
        }
        ip.payload_len = match l4 {
            L4Repr::Tcp(t) => t.buffer_len(),
            L4Repr::Udp(u) => u.buffer_len(),
            L4Repr::Icmp(i) => i.buffer_len(),
        };
    }
    assert_eq!(r2, r);
});
