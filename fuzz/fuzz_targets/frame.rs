#![no_main]
//! A whole frame through the single parse entry point the stack uses: Ethernet, ARP/IPv4,
//! ICMP/TCP/UDP. Both checksum modes; what parses must emit and parse back the same.
use libfuzzer_sys::fuzz_target;
use xtcp::wire::{FrameRepr, L4Repr, NetRepr, RxChecksum};

fuzz_target!(|data: &[u8]| {
    let _ = FrameRepr::parse(data, RxChecksum::Verify);
    let Ok(mut r) = FrameRepr::parse(data, RxChecksum::TrustL4) else { return };
    let mut buf = vec![0u8; r.buffer_len()];
    r.emit(&mut buf).expect("buffer_len bytes suffice");
    let r2 = FrameRepr::parse(&buf, RxChecksum::Verify).expect("emitted frame parses");
    // SACK blocks that do not fit beside the other options are dropped on emit, by design.
    if let NetRepr::Ipv4 { l4: L4Repr::Tcp(t), .. } = &mut r.net {
        let cap = t.options.sack_capacity();
        t.options.sack.truncate(cap);
    }
    assert_eq!(r2, r);
});
