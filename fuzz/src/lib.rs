//! Helpers shared by the fuzz targets, and the whole-stack harness.

pub mod stack;

/// Make the IPv4 header at the front of `ip` carry a correct checksum, when the bytes look
/// like one. The fuzzer cannot guess a 16-bit checksum, so without this it would never get
/// past the IPv4 header into the transport parsers.
pub fn fix_ipv4_checksum(ip: &mut [u8]) {
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return;
    }
    let hl = ((ip[0] & 0x0f) as usize) * 4;
    if hl < 20 || hl > ip.len() {
        return;
    }
    ip[10] = 0;
    ip[11] = 0;
    let c = xtcp::wire::checksum::checksum(&ip[..hl]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
}
