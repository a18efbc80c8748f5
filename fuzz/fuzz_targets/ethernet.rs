#![no_main]
//! Ethernet II: parse untrusted bytes; what parses must emit and parse back the same.
use libfuzzer_sys::fuzz_target;
use xtcp::wire::{EthernetFrame, EthernetRepr};

fuzz_target!(|data: &[u8]| {
    let Ok(f) = EthernetFrame::new_checked(data) else { return };
    let _ = f.payload();
    let Ok(r) = EthernetRepr::parse(&f) else { return };
    let mut buf = [0u8; 14];
    r.emit(&mut buf).expect("buffer_len bytes suffice");
    assert_eq!(EthernetRepr::parse(&EthernetFrame::new_checked(&buf[..]).unwrap()), Ok(r));
});
