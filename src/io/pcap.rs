//! The classic pcap file format (libpcap, link type Ethernet), microsecond resolution: written
//! by [`PcapTap`], a device wrapper, so that any run opens in Wireshark or tcpdump, and read
//! back by `xtcp decode`.

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

    /// Flush the underlying stream.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Unwrap the writer, returning the stream.
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
    /// The frame's bytes, as captured.
    pub data: Vec<u8>,
}

impl<R: Read> PcapReader<R> {
    /// Read the global header: either byte order, µs or ns timestamps; an error if the stream is
    /// not a pcap file or its link type is not Ethernet.
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

/// A device that records every frame it receives and sends to a pcap file (`--pcap FILE`):
/// any run can be opened in Wireshark. Frames are written as they pass; the first write error
/// stops the recording (counted in `write_errors`) without disturbing the traffic.
pub struct PcapTap<D: super::Device, W: Write> {
    inner: D,
    out: Option<PcapWriter<W>>,
    clock: Box<dyn FnMut() -> u64>,
    /// Write errors seen (the recording stopped at the first).
    pub write_errors: u64,
}

impl<D: super::Device, W: Write> core::fmt::Debug for PcapTap<D, W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PcapTap").field("recording", &self.out.is_some()).finish()
    }
}

impl<D: super::Device, W: Write> PcapTap<D, W> {
    /// Record `inner`'s traffic to `out`; `clock` gives each frame's timestamp in microseconds
    /// (wall time for real devices, virtual time in simulations).
    pub fn new(inner: D, out: W, clock: Box<dyn FnMut() -> u64>) -> io::Result<Self> {
        Ok(PcapTap { inner, out: Some(PcapWriter::new(out)?), clock, write_errors: 0 })
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The wrapped device, mutably.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    fn record(&mut self, frame: &super::Frame) {
        let Some(w) = self.out.as_mut() else { return };
        let t = (self.clock)();
        if w.write_frame(t, self.inner.frame(frame)).is_err() {
            self.write_errors += 1;
            self.out = None;
        }
    }

    /// Flush the file (also done when the tap is dropped, by the writer's own buffering).
    pub fn flush_file(&mut self) -> io::Result<()> {
        match self.out.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl<D: super::Device, W: Write> super::Device for PcapTap<D, W> {
    fn frame_capacity(&self) -> usize {
        self.inner.frame_capacity()
    }
    fn mac(&self) -> crate::wire::MacAddr {
        self.inner.mac()
    }
    fn rx_checksum(&self) -> crate::wire::RxChecksum {
        self.inner.rx_checksum()
    }
    fn rx_burst(&mut self, out: &mut Vec<super::Frame>, max: usize) -> usize {
        let start = out.len();
        let n = self.inner.rx_burst(out, max);
        for f in &out[start..] {
            self.record(f);
        }
        n
    }
    fn frame(&self, f: &super::Frame) -> &[u8] {
        self.inner.frame(f)
    }
    fn buffer_mut(&mut self, f: &super::Frame) -> &mut [u8] {
        self.inner.buffer_mut(f)
    }
    fn recycle(&mut self, f: super::Frame) {
        self.inner.recycle(f)
    }
    fn alloc_tx(&mut self) -> Option<super::Frame> {
        self.inner.alloc_tx()
    }
    fn tx_burst(&mut self, frames: &mut Vec<super::Frame>) -> usize {
        for f in frames.iter() {
            self.record(f);
        }
        self.inner.tx_burst(frames)
    }
    fn flush(&mut self) {
        self.inner.flush()
    }
    fn wait(&mut self, timeout: crate::time::Duration) {
        self.inner.wait(timeout)
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        self.inner.counters()
    }
    fn rx_checksum_of(&self, f: &super::Frame) -> crate::wire::RxChecksum {
        self.inner.rx_checksum_of(f)
    }
    fn tx_tcp_checksum_offload(&self) -> bool {
        self.inner.tx_tcp_checksum_offload()
    }
    fn set_l4_partial(&mut self, f: &super::Frame) {
        self.inner.set_l4_partial(f)
    }
    fn tx_kept(&mut self, f: &super::Frame) -> bool {
        let sent = self.inner.tx_kept(f);
        if sent {
            self.record(f);
        }
        sent
    }
    fn in_flight(&self, f: &super::Frame) -> bool {
        self.inner.in_flight(f)
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
    #[cfg(feature = "mem")]
    fn tap_records_both_directions() {
        use crate::io::mem::{Faults, MemLink};
        use crate::io::Device;
        use crate::wire::MacAddr;
        let (link, a, mut b) = MemLink::pair(
            1,
            [Faults::default(), Faults::default()],
            [MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2; 6])],
            4,
            128,
        );
        let file = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.borrow_mut().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut tap = PcapTap::new(a, Shared(file.clone()), Box::new(|| 42)).unwrap();
        let mut f = tap.alloc_tx().unwrap();
        tap.buffer_mut(&f)[..3].copy_from_slice(b"out");
        f.len = 3;
        tap.tx_burst(&mut vec![f]);
        let mut f = b.alloc_tx().unwrap();
        b.buffer_mut(&f)[..2].copy_from_slice(b"in");
        f.len = 2;
        b.tx_burst(&mut vec![f]);
        link.set_now(crate::time::Instant::ZERO);
        let mut rx = Vec::new();
        tap.rx_burst(&mut rx, 8);
        let bytes = file.borrow().clone();
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        assert_eq!(r.next_record().unwrap().unwrap(), PcapRecord { micros: 42, data: b"out".to_vec() });
        assert_eq!(r.next_record().unwrap().unwrap(), PcapRecord { micros: 42, data: b"in".to_vec() });
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
