//! The AF_XDP backend: an [`AfXdpDevice`] per (interface, queue), on xsk-rs 0.11 (rings and
//! UMEM) and libbpf-rs 0.25 (our XDP program, `bpf/xtcp.bpf.c`).
//!
//! # Pieces
//!
//! * [`XdpProgram`]: the XDP program attached to one interface. It steers ARP for our
//!   addresses and IPv4 (ICMP, TCP, UDP) to our addresses into the XSKMAP slot of the frame's
//!   rx queue and passes everything else to the kernel. It is attached with a **BPF link**
//!   (`BPF_LINK_CREATE`), native mode first and generic (skb) mode if the driver refuses: a
//!   link belongs to its file descriptor, so it is detached when the last device using it is
//!   dropped, and by the kernel itself if the process dies in any way (no XDP program is left
//!   behind by a crash or a `kill -9`, unlike a netlink attachment). It also makes detaching
//!   independent of the network namespace the dropping thread is in.
//! * [`AfXdpDevice`]: one AF_XDP socket bound to one queue, with its own UMEM of
//!   `frame_count` frames of `frame_size` bytes. Zero-copy is asked for first and copy mode
//!   taken if the driver refuses (veth always refuses: AFXDP-NOTES.md). [`AfXdpDevice::bind_mode`]
//!   and [`XdpProgram::mode`] say what was obtained.
//!
//! # Frames
//!
//! [`Frame::index`] is the UMEM frame index. The kernel reserves the first
//! `XDP_PACKET_HEADROOM` (256) bytes of each frame for XDP programs; the rest is the buffer
//! the stack sees ([`Device::buffer_mut`], [`Device::frame_capacity`] = `frame_size - 256`),
//! and [`Frame::offset`] counts from its start. Received frames arrive at offset 0.
//!
//! xsk-rs only submits a frame at the address it was created with, so a frame sent with an
//! offset other than that of its descriptor is moved to it first (a copy, counted as
//! `tx_realigned`). Frames built from [`Device::alloc_tx`] (offset 0) and received frames sent
//! back in place never move.
//!
//! # Ownership of frames
//!
//! Each frame is in exactly one place: free, in the fill ring, in the TX ring (until the
//! completion ring returns it) or with the caller. The device tracks this per frame and
//! panics on a handle that names a frame the caller does not hold (a bug in the caller; it
//! would otherwise race with the kernel writing into the frame).
//!
//! # Rings
//!
//! The fill ring is topped up from the free frames at every [`Device::rx_burst`], up to
//! `min(ring_size, frame_count / 2)` frames, so transmit always has frames too. The completion
//! ring is reaped into the free list at every TX call. `need_wakeup` is honoured both ways: a
//! TX kick (`sendto`) only when the kernel asks for one, in [`Device::flush`] (copy mode asks
//! every time, and sends at most 32 frames per kick, so flush kicks until the ring is drained
//! or the kernel stops making progress), and a fill-ring wakeup (`poll`) only when asked and
//! nothing was received.
//!
//! # Network namespaces
//!
//! Opening resolves the interface name, attaches the program and binds the socket in the
//! network namespace of the calling *thread*. A thread that entered a namespace with
//! `setns(2)` can open a device there and hand it to another thread; dropping it anywhere is
//! fine (see the BPF link above).

use std::ffi::CString;
use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use libbpf_rs::libbpf_sys;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, MapHandle};
use xsk_rs::config::{BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use super::{Device, Frame};
use crate::wire::{MacAddr, RxChecksum};

#[allow(unsafe_code, missing_debug_implementations, unused_imports, clippy::all, clippy::pedantic, unreachable_pub)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/xtcp.skel.rs"));
}
use skel::XtcpSkelBuilder;

/// Bytes at the start of every UMEM frame that the kernel keeps for XDP (`XDP_PACKET_HEADROOM`).
pub const XDP_PACKET_HEADROOM: usize = 256;
/// Queues the program's XSKMAP has room for (`MAX_QUEUES` in `bpf/xtcp.bpf.c`).
pub const MAX_QUEUES: u32 = 64;
/// Addresses the program's address map has room for (`MAX_ADDRS` in `bpf/xtcp.bpf.c`).
pub const MAX_ADDRS: usize = 64;

/// Why the backend could not be set up: what was being done, and the system's answer.
#[derive(Debug)]
pub struct Error {
    what: String,
    source: io::Error,
}

impl Error {
    fn new(what: impl Into<String>, source: io::Error) -> Error {
        Error { what: what.into(), source }
    }
    fn other(what: impl Into<String>, source: impl fmt::Display) -> Error {
        Error::new(what, io::Error::other(source.to_string()))
    }
    fn bpf(what: impl Into<String>, e: libbpf_rs::Error) -> Error {
        Error::new(what, io::Error::other(format!("{e:#}")))
    }
    /// The errno behind the failure, when there is one (EOPNOTSUPP for an unsupported mode…).
    pub fn raw_os_error(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Where the XDP program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver (`XDP_FLAGS_DRV_MODE`): veth and most NIC drivers.
    Native,
    /// On the skb, after the driver (`XDP_FLAGS_SKB_MODE`): works everywhere, slower.
    Generic,
}

/// Which XDP mode to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpModeRequest {
    /// Native, and generic if the driver refuses native.
    #[default]
    Auto,
    /// Native only: opening fails if the driver refuses.
    Native,
    /// Generic only.
    Generic,
}

/// How the socket's frames reach the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// The driver DMAs into the UMEM (needs driver support; never on veth).
    ZeroCopy,
    /// The kernel copies between the UMEM and its own buffers.
    Copy,
}

/// Which bind mode to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindModeRequest {
    /// Zero-copy, and copy mode if the driver refuses.
    #[default]
    Auto,
    /// Zero-copy only: opening fails if the driver refuses.
    ZeroCopy,
    /// Copy mode only.
    Copy,
}

/// How to open an [`AfXdpDevice`].
#[derive(Debug, Clone)]
pub struct AfXdpConfig {
    /// The interface, in the calling thread's network namespace.
    pub ifname: String,
    /// The stack's addresses, IPv4 and IPv6: what the XDP program steers to the sockets
    /// (for IPv6 also the neighbour solicitations for them).
    pub addrs: Vec<IpAddr>,
    /// Frames in each socket's UMEM.
    pub frame_count: u32,
    /// Bytes per frame: a power of two, at least 2048.
    pub frame_size: u32,
    /// Entries in each of the four rings (rx, tx, fill, completion): a power of two.
    pub ring_size: u32,
    /// Most frames moved per ring operation (the size of the device's descriptor scratch).
    pub batch: usize,
    /// Which XDP mode to attach the program in.
    pub xdp_mode: XdpModeRequest,
    /// Which bind mode to ask the kernel for.
    pub bind_mode: BindModeRequest,
    /// Tell the stack to skip L4 checksum checks ([`RxChecksum::TrustL4`]). Only for a peer
    /// known to leave them partial; the lab turns offload off instead, so the default verifies.
    pub trust_rx_l4_checksums: bool,
}

impl AfXdpConfig {
    /// Defaults: 16384 frames of 2048 bytes (32 MiB), rings of 4096, batches of 64,
    /// native-then-generic XDP, zero-copy-then-copy bind, checksums verified. The fill ring
    /// (4096) is what absorbs a burst that arrives while the loop is busy (on veth, the
    /// peer's sends are delivered into it from the peer's own system calls); with rings of
    /// 2048 and 4096 frames, a 100,000-connection ramp lost enough handshakes at an empty
    /// fill ring (`xsk_rx_fill_ring_empty`) to time 250–340 of them out. The frames cover
    /// the fill, RX and TX rings at once with room for what the stack holds.
    pub fn new<A: Into<IpAddr> + Copy>(ifname: impl Into<String>, addrs: &[A]) -> AfXdpConfig {
        AfXdpConfig {
            ifname: ifname.into(),
            addrs: addrs.iter().map(|&a| a.into()).collect(),
            frame_count: 16384,
            frame_size: 2048,
            ring_size: 4096,
            batch: 64,
            xdp_mode: XdpModeRequest::Auto,
            bind_mode: BindModeRequest::Auto,
            trust_rx_l4_checksums: false,
        }
    }
}

/// The XDP program's per-CPU counters, summed over the CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpCounters {
    /// Frames handed to an AF_XDP socket.
    pub redirected: u64,
    /// Frames not for the stack, left to the kernel.
    pub passed: u64,
    /// Frames for the stack that arrived on a queue with no socket (left to the kernel).
    pub no_socket: u64,
    /// ARP or IPv4 frames too short for their header (left to the kernel, which drops them).
    pub errors: u64,
}

impl fmt::Display for XdpCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "redirected {} passed {} no_socket {} errors {}",
            self.redirected, self.passed, self.no_socket, self.errors
        )
    }
}

/// The order of the `counters` map (`enum counter` in `bpf/xtcp.bpf.c`).
const COUNTER_SLOTS: u32 = 4;

/// Our XDP program, attached to one interface. Detached when dropped (see the module docs).
#[derive(Debug)]
pub struct XdpProgram {
    ifname: String,
    ifindex: u32,
    mode: XdpMode,
    xsks: MapHandle,
    addrs: MapHandle,
    addrs6: MapHandle,
    counters: MapHandle,
    link: OwnedFd,
}

impl XdpProgram {
    /// Load the program, fill in `addrs` and attach it to `ifname` (in the calling thread's
    /// network namespace).
    pub fn attach<A: Into<IpAddr> + Copy>(
        ifname: &str,
        addrs: &[A],
        mode: XdpModeRequest,
    ) -> Result<XdpProgram, Error> {
        let v6 = addrs.iter().filter(|&&a| a.into().is_ipv6()).count();
        if addrs.len() - v6 > MAX_ADDRS || v6 > MAX_ADDRS {
            return Err(Error::other("too many addresses", format!("at most {MAX_ADDRS}")));
        }
        let ifindex = ifindex(ifname)?;
        let mut storage = MaybeUninit::uninit();
        let open =
            XtcpSkelBuilder::default().open(&mut storage).map_err(|e| Error::bpf("opening the XDP object", e))?;
        let skel = open.load().map_err(|e| Error::bpf("loading the XDP program (bpf/xtcp.bpf.c)", e))?;
        let handle = |m: &libbpf_rs::MapMut<'_>, name: &str| {
            MapHandle::try_from(m).map_err(|e| Error::bpf(format!("duplicating the {name} map"), e))
        };
        let xsks = handle(&skel.maps.xsks_map, "xsks_map")?;
        let addr_map = handle(&skel.maps.local_addrs, "local_addrs")?;
        let addr6_map = handle(&skel.maps.local_addrs6, "local_addrs6")?;
        let counters = handle(&skel.maps.counters, "counters")?;
        for &a in addrs {
            let a: IpAddr = a.into();
            let (map, key) = match a {
                IpAddr::V4(v4) => (&addr_map, v4.octets().to_vec()),
                IpAddr::V6(v6) => (&addr6_map, v6.octets().to_vec()),
            };
            map.update(&key, &[1u8], MapFlags::ANY)
                .map_err(|e| Error::bpf(format!("adding {a} to the address map"), e))?;
        }
        let prog_fd = skel.progs.xtcp_xdp.as_fd().as_raw_fd();
        let (link, mode) = match mode {
            XdpModeRequest::Native => (link_xdp(prog_fd, ifindex, XdpMode::Native)?, XdpMode::Native),
            XdpModeRequest::Generic => (link_xdp(prog_fd, ifindex, XdpMode::Generic)?, XdpMode::Generic),
            XdpModeRequest::Auto => match link_xdp(prog_fd, ifindex, XdpMode::Native) {
                Ok(l) => (l, XdpMode::Native),
                Err(native) => match link_xdp(prog_fd, ifindex, XdpMode::Generic) {
                    Ok(l) => (l, XdpMode::Generic),
                    Err(generic) => {
                        return Err(Error::other(
                            format!("attaching XDP to {ifname}"),
                            format!("native: {native}; generic: {generic}"),
                        ))
                    }
                },
            },
        };
        // The link holds the program, the program holds its maps, and we hold the maps'
        // handles: the skeleton (and `storage`) can go now.
        drop(skel);
        Ok(XdpProgram {
            ifname: ifname.to_owned(),
            ifindex,
            mode,
            xsks,
            addrs: addr_map,
            addrs6: addr6_map,
            counters,
            link,
        })
    }

    /// Native or generic: what the kernel accepted.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// The interface's name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The interface's index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    fn addr_map(&self, addr: IpAddr) -> (&MapHandle, Vec<u8>) {
        match addr {
            IpAddr::V4(a) => (&self.addrs, a.octets().to_vec()),
            IpAddr::V6(a) => (&self.addrs6, a.octets().to_vec()),
        }
    }

    /// Steer frames for `addr` to the sockets too.
    pub fn add_addr(&self, addr: impl Into<IpAddr>) -> Result<(), Error> {
        let addr = addr.into();
        let (map, key) = self.addr_map(addr);
        map.update(&key, &[1u8], MapFlags::ANY).map_err(|e| Error::bpf(format!("adding {addr}"), e))
    }

    /// Stop steering frames for `addr`.
    pub fn remove_addr(&self, addr: impl Into<IpAddr>) -> Result<(), Error> {
        let addr = addr.into();
        let (map, key) = self.addr_map(addr);
        map.delete(&key).map_err(|e| Error::bpf(format!("removing {addr}"), e))
    }

    /// The per-CPU counters, summed.
    pub fn counters(&self) -> Result<XdpCounters, Error> {
        let mut sums = [0u64; COUNTER_SLOTS as usize];
        for (slot, sum) in sums.iter_mut().enumerate() {
            let per_cpu = self
                .counters
                .lookup_percpu(&(slot as u32).to_ne_bytes(), MapFlags::ANY)
                .map_err(|e| Error::bpf("reading the XDP counters", e))?
                .unwrap_or_default();
            *sum = per_cpu.iter().filter_map(|v| v.get(..8)).map(|b| u64::from_ne_bytes(b.try_into().unwrap())).sum();
        }
        Ok(XdpCounters { redirected: sums[0], passed: sums[1], no_socket: sums[2], errors: sums[3] })
    }

    fn register_socket(&self, queue: u32, fd: RawFd) -> Result<(), Error> {
        self.xsks
            .update(&queue.to_ne_bytes(), &(fd as u32).to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| Error::bpf(format!("putting the socket of queue {queue} in the XSKMAP"), e))
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        // Closing the link's fd (next) detaches the program when no other process holds a
        // copy of the fd; BPF_LINK_DETACH detaches it even then (a child forked before exec).
        // SAFETY: `link` is an open BPF link fd owned by `self`; the call takes no pointers.
        let _ = unsafe { libbpf_sys::bpf_link_detach(self.link.as_raw_fd()) };
    }
}

/// Attach `prog_fd` to `ifindex` in `mode` with a BPF link. The link's fd owns the attachment.
fn link_xdp(prog_fd: RawFd, ifindex: u32, mode: XdpMode) -> Result<OwnedFd, Error> {
    let flags = match mode {
        XdpMode::Native => libbpf_sys::XDP_FLAGS_DRV_MODE,
        XdpMode::Generic => libbpf_sys::XDP_FLAGS_SKB_MODE,
    };
    let opts = libbpf_sys::bpf_link_create_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_link_create_opts>() as _,
        flags,
        ..Default::default()
    };
    // SAFETY: `opts` is a fully initialised bpf_link_create_opts whose `sz` is its own size;
    // libbpf reads it during the call only. `prog_fd` is the loaded program's fd, alive here.
    let fd = unsafe { libbpf_sys::bpf_link_create(prog_fd, ifindex as i32, libbpf_sys::BPF_XDP, &opts) };
    if fd < 0 {
        return Err(Error::new(format!("attaching XDP in {mode:?} mode"), io::Error::from_raw_os_error(-fd)));
    }
    // SAFETY: a non-negative return of bpf_link_create is a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifindex(ifname: &str) -> Result<u32, Error> {
    let name = CString::new(ifname).map_err(|e| Error::other(format!("interface name {ifname:?}"), e))?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call.
    let i = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if i == 0 {
        return Err(Error::new(
            format!("no interface {ifname:?} in this network namespace"),
            io::Error::last_os_error(),
        ));
    }
    Ok(i)
}

fn mac_address(ifname: &str) -> Result<MacAddr, Error> {
    let what = || format!("reading the MAC address of {ifname}");
    if ifname.len() >= libc::IFNAMSIZ {
        return Err(Error::other(what(), "interface name too long"));
    }
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::new(what(), io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data (arrays, integers and a union of them): all zeroes is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(ifname.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR reads the NUL-terminated name (checked shorter than IFNAMSIZ,
    // rest zero) and writes a sockaddr into the union, both inside `req`, which outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) } < 0 {
        return Err(Error::new(what(), io::Error::last_os_error()));
    }
    // SAFETY: after a successful SIOCGIFHWADDR the union holds `ifru_hwaddr`.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(MacAddr(mac))
}

/// Where a frame is. Checked on every handle the caller passes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameState {
    Free,
    Fill,
    Tx,
    User,
    /// Given back by the caller while a `tx_kept` send of it is in flight: freed when the
    /// kernel completes it.
    Released,
}

/// The device's own counters (the kernel's are in [`AfXdpDevice::socket_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Frames taken from the RX ring.
    pub rx_frames: u64,
    /// Frames put on the TX ring (`tx_kept` sends included).
    pub tx_frames: u64,
    /// `sendto` kicks (copy mode needs one per 32 frames sent).
    pub tx_kicks: u64,
    /// Kicks the kernel answered with an error other than "busy, try again".
    pub tx_kick_errors: u64,
    /// `poll` calls made because the kernel flagged the fill ring as needing a wakeup.
    pub fill_wakeups: u64,
    /// `alloc_tx` calls that found no free frame.
    pub alloc_failures: u64,
    /// Frames moved to their descriptor's offset before sending (see the module docs).
    pub tx_realigned: u64,
    /// RX descriptors that named no frame of ours (never expected; the frame is dropped).
    pub rx_bad_descs: u64,
    /// Frames sent in place while the caller keeps them (zero-copy send).
    pub tx_kept: u64,
    /// `tx_kept` refusals: the TX ring was full, or the frame's bytes did not start at its
    /// buffer (the caller then copies).
    pub tx_kept_refused: u64,
    /// Refills that left the fill ring short of its target because no frame was free (all
    /// in the rings, in flight or with the caller): the kernel may then drop received
    /// frames (`xsk_rx_fill_ring_empty`).
    pub fill_short: u64,
}

/// The kernel's counters for one socket (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Frames dropped for reasons other than those below (`rx_dropped`).
    pub rx_dropped: u64,
    /// RX frames dropped because of an invalid descriptor (`rx_invalid_descs`).
    pub rx_invalid_descs: u64,
    /// TX frames dropped because of an invalid descriptor (`tx_invalid_descs`).
    pub tx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full (`rx_ring_full`).
    pub rx_ring_full: u64,
    /// Times the kernel found no frame in the fill ring to receive into
    /// (`rx_fill_ring_empty_descs`).
    pub rx_fill_ring_empty_descs: u64,
    /// Times the kernel found the TX ring empty when woken to send (`tx_ring_empty_descs`).
    pub tx_ring_empty_descs: u64,
}

/// One AF_XDP socket on one queue of one interface, with its own UMEM. See the module docs.
///
/// Dropping it closes the socket (the kernel removes it from the XSKMAP) and, with the last
/// device of the interface, detaches the XDP program.
#[derive(Debug)]
pub struct AfXdpDevice {
    // Rings first: they go before the UMEM they point into (xsk-rs also keeps it alive).
    rx: RxQueue,
    tx: TxQueue,
    fill: FillQueue,
    comp: CompQueue,
    umem: Umem,
    program: Arc<XdpProgram>,
    /// Per frame: a descriptor of the frame's whole buffer (`frame_capacity` bytes from
    /// `XDP_PACKET_HEADROOM`), the only address xsk-rs lets us submit for that frame.
    full: Box<[FrameDesc]>,
    state: Box<[FrameState]>,
    /// Per frame: `tx_kept` sends of it the kernel has not completed.
    kept_in_flight: Box<[u16]>,
    free: Vec<u32>,
    scratch: Vec<FrameDesc>,
    in_fill: usize,
    fill_target: usize,
    frame_size: usize,
    capacity: usize,
    ring_size: u32,
    queue: u32,
    mac: MacAddr,
    bind_mode: BindMode,
    /// Why zero-copy was refused, when it was asked for and refused.
    zero_copy_refusal: Option<String>,
    rx_checksum: RxChecksum,
    stats: DeviceStats,
}

const _: () = {
    const fn is_send<T: Send>() {}
    is_send::<AfXdpDevice>();
};

type Rings = (TxQueue, RxQueue, FillQueue, CompQueue);

impl AfXdpDevice {
    /// Attach the XDP program to `cfg.ifname` and bind a socket on `queue`.
    pub fn open(cfg: &AfXdpConfig, queue: u32) -> Result<AfXdpDevice, Error> {
        let program = Arc::new(XdpProgram::attach(&cfg.ifname, &cfg.addrs, cfg.xdp_mode)?);
        AfXdpDevice::bind(cfg, program, queue)
    }

    /// Attach the XDP program once and bind a socket on each of queues `0..queues` (bind every
    /// queue of a veth: its sender picks the queue, AFXDP-NOTES.md). The devices share the
    /// program, which is detached when the last of them is dropped.
    pub fn open_queues(cfg: &AfXdpConfig, queues: u32) -> Result<Vec<AfXdpDevice>, Error> {
        let program = Arc::new(XdpProgram::attach(&cfg.ifname, &cfg.addrs, cfg.xdp_mode)?);
        (0..queues).map(|q| AfXdpDevice::bind(cfg, Arc::clone(&program), q)).collect()
    }

    /// Bind a socket on `queue` of the interface `program` is attached to.
    pub fn bind(cfg: &AfXdpConfig, program: Arc<XdpProgram>, queue: u32) -> Result<AfXdpDevice, Error> {
        if queue >= MAX_QUEUES {
            return Err(Error::other(format!("queue {queue}"), format!("the XSKMAP has {MAX_QUEUES} slots")));
        }
        if cfg.batch == 0 {
            return Err(Error::other("batch size", "must be at least 1"));
        }
        if cfg.ifname != program.ifname() {
            return Err(Error::other(
                format!("binding to {}", cfg.ifname),
                format!("the XDP program is attached to {}", program.ifname()),
            ));
        }
        let mac = mac_address(&cfg.ifname)?;
        // A failed zero-copy bind may leave the UMEM's rings half set up: start again from a
        // fresh UMEM for the copy-mode attempt.
        let mut zero_copy_refusal = None;
        let ((umem, descs, rings), bind_mode) = match cfg.bind_mode {
            BindModeRequest::ZeroCopy => (create_socket(cfg, queue, BindMode::ZeroCopy)?, BindMode::ZeroCopy),
            BindModeRequest::Copy => (create_socket(cfg, queue, BindMode::Copy)?, BindMode::Copy),
            BindModeRequest::Auto => match create_socket(cfg, queue, BindMode::ZeroCopy) {
                Ok(s) => (s, BindMode::ZeroCopy),
                Err(e) => {
                    zero_copy_refusal = Some(e.to_string());
                    (create_socket(cfg, queue, BindMode::Copy)?, BindMode::Copy)
                }
            },
        };
        let (tx, rx, fill, comp) = rings;
        let frame_size = cfg.frame_size as usize;
        let capacity = frame_size - XDP_PACKET_HEADROOM;
        let mut full = descs.into_boxed_slice();
        for d in full.iter_mut() {
            debug_assert_eq!(d.addr() % frame_size, XDP_PACKET_HEADROOM);
            // SAFETY: `d` is one of this UMEM's own descriptors and no ring holds any frame
            // yet, so nothing else reads or writes the memory this borrow covers.
            unsafe { umem.data_mut(d) }.cursor().set_pos(capacity);
        }
        let frames = full.len();
        let mut dev = AfXdpDevice {
            rx,
            tx,
            fill,
            comp,
            umem,
            program,
            full,
            state: vec![FrameState::Free; frames].into_boxed_slice(),
            kept_in_flight: vec![0; frames].into_boxed_slice(),
            free: (0..frames as u32).rev().collect(),
            scratch: vec![FrameDesc::default(); cfg.batch],
            in_fill: 0,
            fill_target: (cfg.ring_size as usize).min(frames / 2),
            frame_size,
            capacity,
            ring_size: cfg.ring_size,
            queue,
            mac,
            bind_mode,
            zero_copy_refusal,
            rx_checksum: if cfg.trust_rx_l4_checksums { RxChecksum::TrustL4 } else { RxChecksum::Verify },
            stats: DeviceStats::default(),
        };
        dev.refill();
        dev.program.register_socket(queue, dev.rx.fd().as_raw_fd())?;
        Ok(dev)
    }

    /// The interface queue this socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Zero-copy or copy: what the kernel accepted for this socket.
    pub fn bind_mode(&self) -> BindMode {
        self.bind_mode
    }

    /// Why the kernel refused zero-copy, when [`BindModeRequest::Auto`] had to fall back to copy.
    pub fn zero_copy_refusal(&self) -> Option<&str> {
        self.zero_copy_refusal.as_deref()
    }

    /// The XDP program this socket receives from (shared by the interface's devices).
    pub fn program(&self) -> &Arc<XdpProgram> {
        &self.program
    }

    /// The XDP program's counters, summed over CPUs (for the whole interface).
    pub fn xdp_counters(&self) -> Result<XdpCounters, Error> {
        self.program.counters()
    }

    /// The device's own counters so far.
    pub fn stats(&self) -> DeviceStats {
        self.stats
    }

    /// The kernel's counters for this socket.
    pub fn socket_stats(&self) -> io::Result<SocketStats> {
        let s = self.rx.fd().xdp_statistics()?;
        Ok(SocketStats {
            rx_dropped: s.rx_dropped(),
            rx_invalid_descs: s.rx_invalid_descs(),
            tx_invalid_descs: s.tx_invalid_descs(),
            rx_ring_full: s.rx_ring_full(),
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs(),
            tx_ring_empty_descs: s.tx_ring_empty_descs(),
        })
    }

    /// Frames with the caller (received and not recycled, or allocated and not sent).
    pub fn frames_held(&self) -> usize {
        self.state.iter().filter(|s| **s == FrameState::User).count()
    }

    /// Give free frames to the fill ring, up to `fill_target` frames in it.
    fn refill(&mut self) {
        loop {
            let missing = self.fill_target.saturating_sub(self.in_fill);
            if missing > 0 && self.free.is_empty() {
                self.stats.fill_short += 1;
            }
            let want = missing.min(self.free.len()).min(self.scratch.len());
            if want == 0 {
                return;
            }
            let n = (self.fill.nb_free(want as u32) as usize).min(want);
            if n == 0 {
                return;
            }
            for i in 0..n {
                let idx = self.free.pop().expect("counted above") as usize;
                debug_assert_eq!(self.state[idx], FrameState::Free);
                self.state[idx] = FrameState::Fill;
                self.scratch[i] = self.full[idx];
            }
            // SAFETY: the descriptors are this UMEM's, of frames that were free (no ring and
            // no caller holds them); the ring has room for all `n` (checked above).
            let put = unsafe { self.fill.produce(&self.scratch[..n]) };
            debug_assert_eq!(put, n);
            self.in_fill += n;
        }
    }

    /// Move completed TX frames to the free list.
    fn reap(&mut self) {
        loop {
            // SAFETY: the completion ring returns frames of this UMEM that we sent.
            let n = unsafe { self.comp.consume(&mut self.scratch) };
            for i in 0..n {
                let idx = self.scratch[i].addr() / self.frame_size;
                if self.kept_in_flight[idx] > 0 {
                    // A frame its owner kept (zero-copy send): only freed if given back.
                    self.kept_in_flight[idx] -= 1;
                    if self.kept_in_flight[idx] == 0 && self.state[idx] == FrameState::Released {
                        self.state[idx] = FrameState::Free;
                        self.free.push(idx as u32);
                    }
                    continue;
                }
                debug_assert_eq!(self.state[idx], FrameState::Tx);
                self.state[idx] = FrameState::Free;
                self.free.push(idx as u32);
            }
            if n < self.scratch.len() {
                break;
            }
        }
    }

    /// Check that `f` names a frame the caller holds and lies inside its buffer.
    fn check(&self, f: &Frame) -> usize {
        let idx = f.index as usize;
        assert!(
            self.state.get(idx) == Some(&FrameState::User),
            "frame {} is not held by the caller (it is {:?})",
            f.index,
            self.state.get(idx)
        );
        assert!(
            f.offset as usize + f.len as usize <= self.capacity,
            "frame {}: {}+{} is outside its {}-byte buffer",
            f.index,
            f.offset,
            f.len,
            self.capacity
        );
        idx
    }

    fn buffer_of(&mut self, idx: usize) -> &mut [u8] {
        let (ptr, len) = {
            // SAFETY: `full[idx]` is this UMEM's descriptor of frame `idx`, which the caller
            // holds (checked by the callers of this function), so neither the kernel nor any
            // ring uses it; `&mut self` keeps every other view of the frame away.
            let mut data = unsafe { self.umem.data_mut(&mut self.full[idx]) };
            let s = data.contents_mut();
            (s.as_mut_ptr(), s.len())
        };
        // SAFETY: `ptr..ptr+len` is the frame's whole buffer, just borrowed from the UMEM
        // mapping through xsk-rs for as long as `&mut self` (xsk-rs only hands it out tied to
        // a guard of its own, which cannot be returned); the mapping lives as long as `self.umem`.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }
}

/// A UMEM and a socket bound in `mode` (always with need_wakeup), sharing nothing with any
/// other socket; our program is attached separately (libxdp must not load its own).
fn create_socket(cfg: &AfXdpConfig, queue: u32, mode: BindMode) -> Result<(Umem, Vec<FrameDesc>, Rings), Error> {
    let ring = QueueSize::new(cfg.ring_size).map_err(|e| Error::other("ring size", e))?;
    let umem_cfg = UmemConfig::builder()
        .frame_size(FrameSize::new(cfg.frame_size).map_err(|e| Error::other("frame size", e))?)
        .fill_queue_size(ring)
        .comp_queue_size(ring)
        .frame_headroom(0)
        .build()
        .map_err(|e| Error::other("UMEM configuration", e))?;
    let frames = NonZeroU32::new(cfg.frame_count).ok_or_else(|| Error::other("frame count", "must not be 0"))?;
    let (umem, descs) = Umem::new(umem_cfg, frames, false).map_err(|e| Error::other("creating the UMEM", e))?;
    let bind = match mode {
        BindMode::ZeroCopy => BindFlags::XDP_ZEROCOPY,
        BindMode::Copy => BindFlags::XDP_COPY,
    } | BindFlags::XDP_USE_NEED_WAKEUP;
    let sock_cfg = SocketConfig::builder()
        .rx_queue_size(ring)
        .tx_queue_size(ring)
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(bind)
        .build();
    let ifname: Interface = cfg.ifname.parse().map_err(|e| Error::other("interface name", e))?;
    // SAFETY: the UMEM is new and used by this socket only, and libxdp is told not to load or
    // unload any program (INHIBIT_PROG_LOAD), which is what xsk-rs asks of its callers.
    let (tx, rx, fq_cq) = unsafe { Socket::new(sock_cfg, &umem, &ifname, queue) }.map_err(|e| {
        let source = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<io::Error>())
            .and_then(io::Error::raw_os_error)
            .map(io::Error::from_raw_os_error)
            .unwrap_or_else(|| io::Error::other(e.to_string()));
        Error::new(format!("binding an AF_XDP socket to {} queue {queue} in {mode:?} mode", cfg.ifname), source)
    })?;
    let (fill, comp) = fq_cq.ok_or_else(|| Error::other("binding", "xsk-rs returned no fill/completion ring"))?;
    Ok((umem, descs, (tx, rx, fill, comp)))
}

/// The AF_XDP socket, for a loop that waits on several descriptors (epoll, mio): readable
/// when frames are in the RX ring. [`Stack::poll`](crate::stack::Stack::poll) leaves the fill
/// ring stocked and returns the next deadline, so a loop may call it, then wait on this
/// descriptor until that deadline, then call it again — what [`Device::wait`] does with
/// poll(2).
impl AsFd for AfXdpDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor is the RX queue's socket, which `self` owns and keeps open
        // for as long as it lives; the borrow cannot outlive `self`.
        unsafe { BorrowedFd::borrow_raw(self.rx.fd().as_raw_fd()) }
    }
}

impl AsRawFd for AfXdpDevice {
    fn as_raw_fd(&self) -> RawFd {
        self.rx.fd().as_raw_fd()
    }
}

impl Device for AfXdpDevice {
    fn frame_capacity(&self) -> usize {
        self.capacity
    }

    fn mac(&self) -> MacAddr {
        self.mac
    }

    fn rx_checksum(&self) -> RxChecksum {
        self.rx_checksum
    }

    fn rx_burst(&mut self, out: &mut Vec<Frame>, max: usize) -> usize {
        self.refill();
        let want = max.min(self.scratch.len());
        // SAFETY: the RX ring returns frames of this UMEM, which we gave to the fill ring.
        let got = unsafe { self.rx.consume(&mut self.scratch[..want]) };
        let mut taken = 0;
        for i in 0..got {
            let d = self.scratch[i];
            let idx = d.addr() / self.frame_size;
            let start = idx * self.frame_size + XDP_PACKET_HEADROOM;
            let len = d.lengths().data();
            if idx >= self.state.len()
                || self.state[idx] != FrameState::Fill
                || d.addr() < start
                || d.addr() - start + len > self.capacity
            {
                self.stats.rx_bad_descs += 1;
                if idx < self.state.len() && self.state[idx] == FrameState::Fill {
                    self.state[idx] = FrameState::Free;
                    self.free.push(idx as u32);
                    self.in_fill -= 1;
                }
                continue;
            }
            self.state[idx] = FrameState::User;
            self.in_fill -= 1;
            out.push(Frame { index: idx as u32, offset: (d.addr() - start) as u32, len: len as u32 });
            taken += 1;
        }
        if got == 0 && self.fill.needs_wakeup() {
            self.stats.fill_wakeups += 1;
            let _ = self.fill.wakeup(self.rx.fd_mut(), 0);
        }
        self.stats.rx_frames += taken as u64;
        taken
    }

    fn frame(&self, f: &Frame) -> &[u8] {
        let idx = self.check(f);
        // SAFETY: `full[idx]` is this UMEM's descriptor of frame `idx`, which the caller holds
        // (checked): no ring and no `&mut` view covers it while `&self` is borrowed.
        let all = unsafe { self.umem.data(&self.full[idx]) }.contents();
        &all[f.offset as usize..f.offset as usize + f.len as usize]
    }

    fn buffer_mut(&mut self, f: &Frame) -> &mut [u8] {
        let idx = self.check(f);
        self.buffer_of(idx)
    }

    fn recycle(&mut self, f: Frame) {
        let idx = self.check(&f);
        if self.kept_in_flight[idx] > 0 {
            self.state[idx] = FrameState::Released; // freed on completion (`reap`)
            return;
        }
        self.state[idx] = FrameState::Free;
        self.free.push(f.index);
    }

    fn tx_kept(&mut self, f: &Frame) -> bool {
        let idx = self.check(f);
        // xsk-rs submits a frame from the start of its buffer only (see `tx_burst`); moving
        // the bytes would break the caller's layout, so it copies instead.
        if f.offset != 0 || self.kept_in_flight[idx] == u16::MAX {
            self.stats.tx_kept_refused += 1;
            return false;
        }
        self.reap();
        if self.tx.nb_free(1) == 0 {
            self.stats.tx_kept_refused += 1;
            return false;
        }
        let mut d = self.full[idx];
        // SAFETY: `d` is a copy of this UMEM's descriptor of a frame the caller holds; the
        // kernel only reads it, and the caller must not write it until `in_flight` says so.
        unsafe { self.umem.data_mut(&mut d) }.cursor().set_pos(f.len as usize);
        // SAFETY: a descriptor of this UMEM; the ring has room for it (checked above).
        let put = unsafe { self.tx.produce(std::slice::from_ref(&d)) };
        debug_assert_eq!(put, 1);
        self.kept_in_flight[idx] += 1;
        self.stats.tx_frames += 1;
        self.stats.tx_kept += 1;
        true
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let s = &self.stats;
        let mut v = vec![
            ("rx_frames", s.rx_frames),
            ("tx_frames", s.tx_frames),
            ("tx_kicks", s.tx_kicks),
            ("tx_kick_errors", s.tx_kick_errors),
            ("fill_wakeups", s.fill_wakeups),
            ("alloc_failures", s.alloc_failures),
            ("tx_realigned", s.tx_realigned),
            ("rx_bad_descs", s.rx_bad_descs),
            ("tx_kept", s.tx_kept),
            ("tx_kept_refused", s.tx_kept_refused),
            ("fill_short", s.fill_short),
        ];
        // The kernel's side of the socket (XDP_STATISTICS): frames it dropped because the RX
        // ring was full or the fill ring empty, which no counter of ours can see.
        if let Ok(k) = self.socket_stats() {
            v.extend([
                ("xsk_rx_dropped", k.rx_dropped),
                ("xsk_rx_ring_full", k.rx_ring_full),
                ("xsk_rx_fill_ring_empty", k.rx_fill_ring_empty_descs),
                ("xsk_tx_ring_empty", k.tx_ring_empty_descs),
                ("xsk_rx_invalid_descs", k.rx_invalid_descs),
                ("xsk_tx_invalid_descs", k.tx_invalid_descs),
            ]);
        }
        v
    }

    fn in_flight(&self, f: &Frame) -> bool {
        self.kept_in_flight.get(f.index as usize).is_some_and(|&n| n > 0)
    }

    fn alloc_tx(&mut self) -> Option<Frame> {
        if self.free.is_empty() {
            self.reap();
        }
        match self.free.pop() {
            Some(i) => {
                self.state[i as usize] = FrameState::User;
                Some(Frame { index: i, offset: 0, len: 0 })
            }
            None => {
                self.stats.alloc_failures += 1;
                None
            }
        }
    }

    fn tx_burst(&mut self, frames: &mut Vec<Frame>) -> usize {
        self.reap();
        let room = self.tx.nb_free(frames.len().min(self.scratch.len()) as u32) as usize;
        let n = frames.len().min(self.scratch.len()).min(room);
        for (i, f) in frames.iter().enumerate().take(n) {
            let (off, len) = (f.offset as usize, f.len as usize);
            let idx = self.check(f);
            if off != 0 {
                self.buffer_of(idx).copy_within(off..off + len, 0);
                self.stats.tx_realigned += 1;
            }
            let mut d = self.full[idx];
            // SAFETY: `d` is a copy of this UMEM's descriptor of a frame the caller handed us;
            // no ring holds it and `&mut self` keeps every other view away.
            unsafe { self.umem.data_mut(&mut d) }.cursor().set_pos(len);
            self.scratch[i] = d;
        }
        // SAFETY: the descriptors are this UMEM's, of frames no ring holds; the ring has room
        // for all `n` (checked above), and the frames are marked as the kernel's below.
        let put = unsafe { self.tx.produce(&self.scratch[..n]) };
        debug_assert_eq!(put, n);
        for f in frames.drain(..n) {
            self.state[f.index as usize] = FrameState::Tx;
        }
        self.stats.tx_frames += n as u64;
        n
    }

    fn wait(&mut self, timeout: crate::time::Duration) {
        // Give the kernel every free frame first, or it has nowhere to put what arrives.
        self.refill();
        // ppoll(2), not poll(2): a timer due in 150 µs must not wait a whole millisecond
        // (the stack's timers are finer than that, `StackConfig::timer_resolution`).
        let micros = timeout.as_micros();
        let ts = libc::timespec {
            tv_sec: (micros / 1_000_000).min(i32::MAX as u128) as libc::time_t,
            tv_nsec: ((micros % 1_000_000) * 1000) as libc::c_long,
        };
        let mut pfd = libc::pollfd { fd: self.rx.fd().as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid, initialised pollfd and a timespec that outlive the call; ppoll(2)
        // only writes the pollfd's `revents`, and a null signal mask leaves the mask as it is.
        let _ = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    }

    fn flush(&mut self) {
        // Copy mode sends at most 32 frames per kick (the kernel's TX budget): kick until the
        // ring is drained, the kernel stops asking, or a kick makes no progress (peer full).
        let mut pending = self.ring_size - self.tx.nb_free_exact();
        while pending > 0 && self.tx.needs_wakeup() {
            self.stats.tx_kicks += 1;
            if self.tx.wakeup().is_err() {
                self.stats.tx_kick_errors += 1;
                break;
            }
            let now = self.ring_size - self.tx.nb_free_exact();
            if now >= pending {
                break;
            }
            pending = now;
        }
        self.reap();
    }
}
