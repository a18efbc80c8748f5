//! The classic pcap file format (libpcap, link type Ethernet), microsecond resolution: written
//! by the stack's tap so that any run opens in Wireshark or tcpdump, and read back by
//! `xtcp decode`.

use std::io::{self, Read, Write};

const MAGIC_USEC: u32 = 0xa1b2_c3d4;
const MAGIC_NSEC: u32 = 0xa1b2_3c4d;
const LINKTYPE_ETHERNET: u32 = 1;
/// Largest frame a reader accepts; bounds the memory an untrusted file can make us allocate.
pub const MAX_SNAPLEN: u32 = 262_144;

/// Writes frames to a pcap stream.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    /// Write the global header.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&MAGIC_USEC.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        h[16..20].copy_from_slice(&MAX_SNAPLEN.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out })
    }

    /// Append one frame seen at `micros` since the Unix epoch (or any origin).
    pub fn write_frame(&mut self, micros: u64, frame: &[u8]) -> io::Result<()> {
        let len = u32::try_from(frame.len()).map_err(|_| io::Error::other("frame too long for pcap"))?;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((micros / 1_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&len.to_le_bytes());
        h[12..16].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(frame)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Reads frames from a pcap stream (either byte order, µs or ns timestamps, Ethernet only).
#[derive(Debug)]
pub struct PcapReader<R: Read> {
    input: R,
    swapped: bool,
    nanos: bool,
}

/// One frame read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapRecord {
    /// Timestamp in microseconds.
    pub micros: u64,
    pub data: Vec<u8>,
}

impl<R: Read> PcapReader<R> {
    pub fn new(mut input: R) -> io::Result<Self> {
        let mut h = [0u8; 24];
        input.read_exact(&mut h)?;
        let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let (swapped, nanos) = match magic {
            MAGIC_USEC => (false, false),
            MAGIC_NSEC => (false, true),
            m if m.swap_bytes() == MAGIC_USEC => (true, false),
            m if m.swap_bytes() == MAGIC_NSEC => (true, true),
            _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "not a pcap file")),
        };
        let r = PcapReader { input, swapped, nanos };
        if r.u32_at(&h, 20) & 0xffff != LINKTYPE_ETHERNET {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "pcap link type is not Ethernet"));
        }
        Ok(r)
    }

    fn u32_at(&self, b: &[u8], at: usize) -> u32 {
        let v = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        if self.swapped {
            v.swap_bytes()
        } else {
            v
        }
    }

    /// The next frame, `None` at a clean end of file.
    pub fn next_record(&mut self) -> io::Result<Option<PcapRecord>> {
        let mut h = [0u8; 16];
        match self.input.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let (sec, frac, incl) = (self.u32_at(&h, 0), self.u32_at(&h, 4), self.u32_at(&h, 8));
        if incl > MAX_SNAPLEN {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "pcap record larger than the snap length"));
        }
        let mut data = vec![0u8; incl as usize];
        self.input.read_exact(&mut data)?;
        let micros = sec as u64 * 1_000_000 + if self.nanos { frac as u64 / 1000 } else { frac as u64 };
        Ok(Some(PcapRecord { micros, data }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_frame(1_500_000, b"frame one").unwrap();
        w.write_frame(2_000_001, b"two").unwrap();
        let bytes = w.into_inner();
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        assert_eq!(r.next_record().unwrap(), Some(PcapRecord { micros: 1_500_000, data: b"frame one".to_vec() }));
        assert_eq!(r.next_record().unwrap(), Some(PcapRecord { micros: 2_000_001, data: b"two".to_vec() }));
        assert_eq!(r.next_record().unwrap(), None);
    }

    #[test]
    fn rejects_garbage_and_huge_records() {
        assert!(PcapReader::new(&[0u8; 24][..]).is_err());
        let mut bytes = PcapWriter::new(Vec::new()).unwrap().into_inner();
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]);
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        assert!(r.next_record().is_err());
    }
}
