#![no_main]
//! IPv4: parse untrusted bytes (both checksum modes); what parses must emit and parse back
//! the same, payload included.
use libfuzzer_sys::fuzz_target;
use xtcp::wire::{Ipv4Packet, Ipv4Repr, RxChecksum};

fuzz_target!(|data: &[u8]| {
    let _ = Ipv4Repr::parse_quoted(data);
    let _ = Ipv4Packet::new_checked(data).map(|p| Ipv4Repr::parse(&p, RxChecksum::Verify));
    // Give the header a valid checksum so the fuzzer gets past it to the rest of the checks.
    let mut fixed = data.to_vec();
    xtcp_fuzz::fix_ipv4_checksum(&mut fixed);
    let data = &fixed[..];
    let Ok(p) = Ipv4Packet::new_checked(data) else { return };
    let payload = p.payload();
    let Ok(r) = Ipv4Repr::parse(&p, RxChecksum::Verify) else { return };
    assert_eq!(r.payload_len, payload.len());
    let mut buf = vec![0u8; r.buffer_len() + payload.len()];
    let hl = r.emit(&mut buf).expect("buffer_len bytes suffice");
    buf[hl..].copy_from_slice(payload);
    let q = Ipv4Packet::new_checked(&buf[..]).expect("emitted header checks");
    assert_eq!(Ipv4Repr::parse(&q, RxChecksum::Verify), Ok(r));
    assert_eq!(q.payload(), payload);
});
