#![no_main]
//! TCP with options: parse untrusted bytes; what parses must emit and parse back the same
//! (SACK blocks beyond what fits beside the other options in Linux's layout are dropped on
//! emit, by design), and emitting twice gives the same bytes.
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use xtcp::wire::{RxChecksum, TcpPacket, TcpRepr};

const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

fuzz_target!(|data: &[u8]| {
    let Ok(p) = TcpPacket::new_checked(data) else { return };
    let _ = TcpRepr::parse(&p, A, B, RxChecksum::Verify);
    let Ok(mut r) = TcpRepr::parse(&p, A, B, RxChecksum::TrustL4) else { return };
    let mut buf = vec![0u8; r.buffer_len()];
    r.emit(&mut buf, A, B).expect("buffer_len bytes suffice");
    let q = TcpPacket::new_checked(&buf[..]).expect("emitted segment checks");
    let r2 = TcpRepr::parse(&q, A, B, RxChecksum::Verify).expect("emitted segment parses");
    let cap = r.options.sack_capacity();
    r.options.sack.truncate(cap);
    assert_eq!(r2, r);
    let mut buf2 = vec![0u8; r2.buffer_len()];
    r2.emit(&mut buf2, A, B).unwrap();
    assert_eq!(buf, buf2);
});
