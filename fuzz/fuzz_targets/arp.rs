#![no_main]
//! ARP: parse untrusted bytes; what parses must emit and parse back the same.
use libfuzzer_sys::fuzz_target;
use xtcp::wire::{ArpPacket, ArpRepr};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = ArpPacket::new_checked(data) else { return };
    let Ok(r) = ArpRepr::parse(&p) else { return };
    let mut buf = [0u8; 28];
    r.emit(&mut buf).expect("buffer_len bytes suffice");
    assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap()), Ok(r));
});
