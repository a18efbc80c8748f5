#![no_main]
//! UDP: parse untrusted bytes; what parses must emit and parse back the same.
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use xtcp::wire::{RxChecksum, UdpPacket, UdpRepr};

const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

fuzz_target!(|data: &[u8]| {
    let Ok(p) = UdpPacket::new_checked(data) else { return };
    let _ = UdpRepr::parse(&p, A, B, RxChecksum::Verify);
    let Ok(r) = UdpRepr::parse(&p, A, B, RxChecksum::TrustL4) else { return };
    let mut buf = vec![0u8; r.buffer_len()];
    r.emit(&mut buf, A, B).expect("buffer_len bytes suffice");
    let q = UdpPacket::new_checked(&buf[..]).expect("emitted datagram checks");
    assert_eq!(UdpRepr::parse(&q, A, B, RxChecksum::Verify), Ok(r));
});
