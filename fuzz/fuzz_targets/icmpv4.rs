#![no_main]
//! ICMPv4: parse untrusted bytes; what parses must emit and parse back the same.
use libfuzzer_sys::fuzz_target;
use xtcp::wire::{Icmpv4Packet, Icmpv4Repr, RxChecksum};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Icmpv4Packet::new_checked(data) else { return };
    let _ = Icmpv4Repr::parse(&p, RxChecksum::Verify);
    let Ok(r) = Icmpv4Repr::parse(&p, RxChecksum::TrustL4) else { return };
    let mut buf = vec![0u8; r.buffer_len()];
    r.emit(&mut buf).expect("buffer_len bytes suffice");
    let q = Icmpv4Packet::new_checked(&buf[..]).expect("emitted message checks");
    assert_eq!(Icmpv4Repr::parse(&q, RxChecksum::Verify), Ok(r));
});
