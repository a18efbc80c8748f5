#![no_main]
//! IPv6: parse untrusted bytes, walking the extension headers; what parses must emit (the
//! fixed header, then the upper-layer bytes) and parse back the same.
use libfuzzer_sys::fuzz_target;
use xtcp::wire::{Ipv6Packet, Ipv6Repr};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Ipv6Packet::new_checked(data) else { return };
    let Ok((r, at)) = Ipv6Repr::parse(&p) else { return };
    let upper = &p.payload()[at..];
    assert_eq!(r.payload_len, upper.len());
    let mut buf = vec![0u8; r.buffer_len() + upper.len()];
    let hl = r.emit(&mut buf).expect("buffer_len bytes suffice");
    buf[hl..].copy_from_slice(upper);
    let q = Ipv6Packet::new_checked(&buf[..]).expect("emitted header checks");
    assert_eq!(Ipv6Repr::parse(&q), Ok((r, 0)));
    assert_eq!(q.payload(), upper);
});
