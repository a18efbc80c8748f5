#![no_main]
//! ICMPv6 and neighbour discovery: parse untrusted bytes (both checksum modes); what parses
//! must emit, with its checksum over the pseudo-header, and parse back the same.
use core::net::Ipv6Addr;
use libfuzzer_sys::fuzz_target;
use xtcp::wire::{Icmpv6Packet, Icmpv6Repr, NdpRepr, RxChecksum};

const A: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
const B: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = NdpRepr::parse(data) {
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut buf, A, B).expect("buffer_len bytes suffice");
        assert!(Icmpv6Packet::new_checked(&buf[..]).is_ok_and(|p| p.verify_checksum(A, B)));
        assert_eq!(NdpRepr::parse(&buf), Ok(r));
    }
    let Ok(p) = Icmpv6Packet::new_checked(data) else { return };
    let _ = Icmpv6Repr::parse(&p, A, B, RxChecksum::Verify);
    let Ok(r) = Icmpv6Repr::parse(&p, A, B, RxChecksum::TrustL4) else { return };
    let mut buf = vec![0u8; r.buffer_len()];
    r.emit(&mut buf, A, B).expect("buffer_len bytes suffice");
    let q = Icmpv6Packet::new_checked(&buf[..]).expect("emitted message checks");
    assert_eq!(Icmpv6Repr::parse(&q, A, B, RxChecksum::Verify), Ok(r));
});
