//! The DPDK backend: xtcp on DPDK's poll-mode drivers (cargo feature `dpdk`).
//!
//! A [`DpdkDevice`] is one queue pair of one DPDK port: its frames are the mbufs of a pool of
//! its own, numbered once at start in each mbuf's private area (a [`Frame`]'s `index`), so a
//! frame moves between the stack and the driver without copies, as on AF_XDP. What a PMD
//! still holds after `rte_eth_tx_burst` (af_xdp's zero-copy path, a NIC's TX ring) shows as a
//! reference count above one: that is [`Device::in_flight`], and [`Device::tx_kept`] sends a
//! frame the caller keeps by taking one more reference for the driver.
//!
//! DPDK's fast path is static inline C and its structures change layout between releases, so
//! Rust reaches it through a small shim (`csrc/dpdk_shim.c`, built by build.rs with the `cc`
//! crate against `pkg-config libdpdk`, DPDK ≥ 22.11, linked dynamically); nothing here
//! depends on the layout of a DPDK structure.
//!
//! The EAL starts once per process ([`eal_init`]; again is a no-op, as DPDK cannot start
//! twice). By default it needs neither hugepages nor a PCI bus nor shared files
//! ([`default_eal_args`]), and leaves the thread's CPU affinity as it was. Ports are virtual
//! devices hot-plugged by their devargs, `net_af_packet0,iface=veth0`,
//! `net_af_xdp0,iface=veth0`, `net_memif0,role=server,socket=/tmp/m.sock`, … (or a NIC's
//! PCI address with `--eal` arguments that allow the bus), and removed when the last of their
//! devices goes (`rte_eal_hotplug_remove`).
//!
//! DPDK has no wake-up for most virtual devices (af_packet has none), so [`Device::wait`]
//! polls the queue every few tens of microseconds until a frame arrives or the timeout ends;
//! busy-polling loops never call it.

use super::{Device, Frame};
use crate::wire::{MacAddr, RxChecksum};
use std::ffi::{c_char, c_int, CStr, CString};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

/// The opaque DPDK types the shim hands out.
#[repr(C)]
struct RteMempool {
    _private: [u8; 0],
}
#[repr(C)]
struct RteMbuf {
    _private: [u8; 0],
}

extern "C" {
    fn xtcp_dpdk_eal_init(argc: c_int, argv: *mut *mut c_char) -> c_int;
    fn xtcp_dpdk_probe(devargs: *const c_char, name: *const c_char, port: *mut u16) -> c_int;
    fn xtcp_dpdk_remove(port: u16, name: *const c_char) -> c_int;
    fn xtcp_dpdk_port_info(
        port: u16,
        max_rx_queues: *mut u16,
        max_tx_queues: *mut u16,
        mac: *mut u8,
        max_rx_pktlen: *mut u32,
    ) -> c_int;
    fn xtcp_dpdk_pool_create(
        name: *const c_char,
        n: u32,
        data_room: u16,
        table: *mut *mut RteMbuf,
        numbered: *mut u32,
        room: *mut u16,
        err: *mut c_int,
    ) -> *mut RteMempool;
    fn xtcp_dpdk_pool_free(mp: *mut RteMempool);
    fn xtcp_dpdk_port_start(
        port: u16,
        queues: u16,
        ring: u16,
        pools: *const *mut RteMempool,
        mtu: u32,
        want_offload: c_int,
        offloads: *mut u32,
    ) -> c_int;
    fn xtcp_dpdk_link_up(port: u16) -> c_int;
    fn xtcp_dpdk_rx_nombuf(port: u16) -> u64;
    fn xtcp_dpdk_rx_burst(
        port: u16,
        queue: u16,
        idx: *mut u32,
        off: *mut u16,
        len: *mut u16,
        l4_good: *mut u8,
        max: u16,
        dropped: *mut u32,
    ) -> u16;
    fn xtcp_dpdk_tx_burst(
        port: u16,
        queue: u16,
        table: *const *mut RteMbuf,
        idx: *const u32,
        off: *const u16,
        len: *const u16,
        partial: *const u8,
        n: u16,
        keep: c_int,
        offloaded: *mut u32,
    ) -> u16;
    fn xtcp_dpdk_alloc(mp: *mut RteMempool) -> u32;
    fn xtcp_dpdk_free(m: *mut RteMbuf);
    fn xtcp_dpdk_refcnt(m: *const RteMbuf) -> u16;
    fn xtcp_dpdk_buffer(m: *mut RteMbuf, buf_len: *mut u16) -> *mut u8;
    fn xtcp_dpdk_strerror(e: c_int) -> *const c_char;
    fn xtcp_dpdk_pool_avail(mp: *const RteMempool) -> u32;
}

/// Frames per burst, both ways (the shim's bound).
const BURST: usize = 64;
/// What `xtcp_dpdk_port_start` turned on (its `offloads`).
const RX_L4_CKSUM: u32 = 1;
const TX_TCP_CKSUM: u32 = 2;

/// What went wrong, with DPDK's errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What was being done.
    pub what: String,
    /// DPDK's (positive) errno, 0 when none applies.
    pub errno: i32,
}

impl Error {
    fn new(what: impl Into<String>, errno: i32) -> Error {
        Error { what: what.into(), errno }
    }

    fn from_rc(what: impl Into<String>, rc: c_int) -> Error {
        Error::new(what, rc.saturating_abs())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.errno == 0 {
            return f.write_str(&self.what);
        }
        // SAFETY: rte_strerror returns a pointer to a NUL-terminated string that DPDK keeps
        // (a static table, or a per-thread buffer valid until the next call on this thread).
        let msg = unsafe { CStr::from_ptr(xtcp_dpdk_strerror(self.errno)) }.to_string_lossy();
        write!(f, "{}: {msg} (errno {})", self.what, self.errno)
    }
}

impl std::error::Error for Error {}

/// The EAL arguments xtcp starts DPDK with unless told otherwise: no hugepages (256 MiB of
/// ordinary memory), no PCI scan, no shared runtime files (so processes do not meet), no
/// telemetry socket, warnings and worse only, the file prefix `xtcp`, and one lcore mapped to every CPU the process
/// may run on, so that starting the EAL does not move the calling thread (the multi-core
/// runtime pins its own threads).
pub fn default_eal_args() -> Vec<String> {
    let cpus: Vec<String> =
        core_affinity::get_core_ids().unwrap_or_default().iter().map(|c| c.id.to_string()).collect();
    let lcores = if cpus.is_empty() { "0".to_string() } else { format!("0@({})", cpus.join(",")) };
    [
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        "--log-level",
        "5",
        // One prefix for every xtcp process: with --no-shconf they share nothing through it
        // (no config file, no multi-process socket), and a per-process prefix would leave an
        // empty runtime directory under /var/run/dpdk per process.
        "--file-prefix",
        "xtcp",
        "--lcores",
        &lcores,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

static EAL: OnceLock<Result<Vec<String>, Error>> = OnceLock::new();

/// Start DPDK's EAL with `args` (without the program name), once per process: later calls
/// return the first call's result and ignore their arguments (DPDK cannot start twice; its
/// arguments are [`eal_args`]).
pub fn eal_init(args: &[String]) -> Result<(), Error> {
    let r = EAL.get_or_init(|| {
        let owned: Vec<CString> = std::iter::once("xtcp".to_string())
            .chain(args.iter().cloned())
            .map(|a| CString::new(a).map_err(|_| Error::new("an EAL argument holds a NUL byte", 0)))
            .collect::<Result<_, _>>()?;
        let mut argv: Vec<*mut c_char> = owned.iter().map(|a| a.as_ptr() as *mut c_char).collect();
        argv.push(std::ptr::null_mut());
        // SAFETY: argv is `argc` valid NUL-terminated strings and a final null, all alive for
        // the call; rte_eal_init may permute the pointer array (ours, not read afterwards) but
        // does not write the strings. The OnceLock makes this the process's only call.
        let rc = unsafe { xtcp_dpdk_eal_init(owned.len() as c_int, argv.as_mut_ptr()) };
        if rc < 0 {
            return Err(Error::from_rc(format!("starting DPDK's EAL with {args:?}"), rc));
        }
        Ok(args.to_vec())
    });
    r.as_ref().map(|_| ()).map_err(Clone::clone)
}

/// The arguments the EAL was started with, if it was.
pub fn eal_args() -> Option<Vec<String>> {
    EAL.get().and_then(|r| r.as_ref().ok().cloned())
}

/// How to open a port.
#[derive(Debug, Clone)]
pub struct DpdkConfig {
    /// The device's devargs, e.g. `net_af_packet0,iface=veth0` (its name is what precedes the
    /// first comma).
    pub devargs: String,
    /// mbufs in each queue's pool (RX ring, TX ring and what the stack holds).
    pub pool_frames: u32,
    /// Descriptors of each RX and TX ring.
    pub ring_size: u16,
    /// Bytes of each mbuf's buffer at least, DPDK's headroom included (a 1,500-byte MTU
    /// needs 1,518 after the headroom); rounded up so that an mbuf fills whole 4 KiB pages
    /// (see `csrc/dpdk_shim.c`).
    pub data_room: u16,
    /// The port's MTU (`None`: the PMD's default).
    pub mtu: Option<u32>,
    /// Trust the L4 checksums of received frames (veth peers with TX offload leave them
    /// partial); by default every checksum is verified.
    pub trust_rx_l4_checksums: bool,
    /// Use the checksum offloads the PMD offers (default on): received TCP/UDP checksums it
    /// verified good are not verified again, and it fills in the TCP checksums of the
    /// connections' segments. Frames it did not verify are verified by the stack.
    pub checksum_offload: bool,
    /// The EAL's arguments, used if this is the process's first port ([`eal_init`]).
    pub eal_args: Vec<String>,
}

impl DpdkConfig {
    /// Defaults for `devargs`: 8,192 mbufs per queue (buffers of 2,176 bytes at least, a
    /// page each: 32 MiB), rings of 1,024, the default EAL arguments.
    pub fn new(devargs: impl Into<String>) -> DpdkConfig {
        DpdkConfig {
            devargs: devargs.into(),
            pool_frames: 8192,
            ring_size: 1024,
            data_room: 2048 + 128,
            mtu: None,
            trust_rx_l4_checksums: false,
            checksum_offload: true,
            eal_args: default_eal_args(),
        }
    }

    /// The device's name: the devargs up to the first comma.
    pub fn name(&self) -> &str {
        self.devargs.split(',').next().unwrap_or("")
    }
}

/// A probed, started port; removed (and its pools freed) when the last device on it goes.
struct Port {
    id: u16,
    name: CString,
    pools: Vec<Pool>,
}

struct Pool(*mut RteMempool);

impl Drop for Port {
    fn drop(&mut self) {
        let name = self.name.to_string_lossy().into_owned();
        OPEN.lock().unwrap_or_else(|p| p.into_inner()).retain(|n| n != &name);
        // SAFETY: the port was probed and started by `open_queues` and no device uses it any
        // more (this is the last reference); stopping it gives its rings' mbufs back.
        let _ = unsafe { xtcp_dpdk_remove(self.id, self.name.as_ptr()) };
        for p in &self.pools {
            // SAFETY: the pool was created by `open_queues`; the port that filled its rings
            // from it is gone, and no device (which held its mbufs) is left.
            unsafe { xtcp_dpdk_pool_free(p.0) };
        }
    }
}

// SAFETY: a Port is only touched in Drop, once, by whichever thread drops the last Arc; DPDK's
// control calls may be made from any thread once the EAL is up.
unsafe impl Send for Port {}
// SAFETY: shared references to a Port do nothing (only its id and name are read).
unsafe impl Sync for Port {}

/// Names of ports probed by this process, so that two opens of the same name fail clearly.
static OPEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The backend's own counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DpdkStats {
    /// Frames received.
    pub rx_frames: u64,
    /// Frames the PMD accepted for sending (`tx_kept` sends included).
    pub tx_frames: u64,
    /// Frames a full TX ring turned back (they stay with the caller for the next burst; a
    /// frame turned back again counts again).
    pub tx_refused: u64,
    /// `alloc_tx` calls that found the pool empty.
    pub alloc_failures: u64,
    /// Received frames dropped because they spanned several mbufs (a frame larger than one
    /// buffer) or were not of this device's pool.
    pub rx_dropped: u64,
    /// Frames sent in place while the caller keeps them (zero-copy send).
    pub tx_kept: u64,
    /// `tx_kept` calls the TX ring refused (the caller then copies).
    pub tx_kept_refused: u64,
    /// Received frames whose L4 checksum the PMD verified good (RX checksum offload).
    pub rx_l4_verified: u64,
    /// Frames sent with their TCP checksum left to the PMD (TX checksum offload).
    pub tx_l4_offloaded: u64,
    /// `wait` calls, and how many of them found frames before their timeout.
    pub waits: u64,
    /// See `waits`.
    pub wait_wakeups: u64,
}

/// One RX/TX queue pair of a DPDK port, with its own mbuf pool. See the module docs.
pub struct DpdkDevice {
    port: Arc<Port>,
    queue: u16,
    pool: *mut RteMempool,
    /// mbuf `i` of the pool, its buffer and the buffer's length.
    mbufs: Vec<*mut RteMbuf>,
    bufs: Vec<(*mut u8, u16)>,
    /// Whether the caller holds frame `i` (checked on every frame passed in).
    held: Vec<bool>,
    /// Frame `i` arrived with its L4 checksum verified by the PMD.
    l4_good: Vec<bool>,
    /// Frame `i` holds a TCP segment whose checksum the PMD is to fill in.
    partial: Vec<bool>,
    /// The checksum offloads the port has on.
    rx_l4_offload: bool,
    tx_tcp_offload: bool,
    mac: MacAddr,
    rx_checksum: RxChecksum,
    /// Frames `wait` received, in arrival order, handed out by the next `rx_burst`.
    stash: Vec<Frame>,
    stats: DpdkStats,
    idx: [u32; BURST],
    off: [u16; BURST],
    len: [u16; BURST],
    flag: [u8; BURST],
}

// SAFETY: the raw pointers are DPDK objects (a pool, its mbufs and their buffers) that live as
// long as `port` (which frees them last); one thread at a time uses a device (`&mut self`),
// DPDK's burst calls are safe from any thread for distinct queues, and the default mempool
// ops (ring_mp_mc) take and give from any thread.
unsafe impl Send for DpdkDevice {}

impl fmt::Debug for DpdkDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpdkDevice").field("port", &self.port.id).field("queue", &self.queue).finish()
    }
}

impl DpdkDevice {
    /// Start the EAL if needed, probe `cfg.devargs`, and open its queue 0.
    pub fn open(cfg: &DpdkConfig) -> Result<DpdkDevice, Error> {
        Ok(DpdkDevice::open_queues(cfg, 1)?.pop().expect("one queue"))
    }

    /// Start the EAL if needed, probe `cfg.devargs` and open `queues` queue pairs, one device
    /// each (one per core with the multi-core runtime; the PMD spreads flows over its queues,
    /// the runtime steers each to its core).
    pub fn open_queues(cfg: &DpdkConfig, queues: u16) -> Result<Vec<DpdkDevice>, Error> {
        if queues == 0 {
            return Err(Error::new("at least one queue is needed", 0));
        }
        eal_init(&cfg.eal_args)?;
        let name = cfg.name().to_string();
        {
            let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
            if open.contains(&name) {
                return Err(Error::new(format!("{name} is already open in this process"), libc::EBUSY));
            }
            open.push(name.clone());
        }
        let r = DpdkDevice::probe_and_start(cfg, &name, queues);
        if r.is_err() {
            OPEN.lock().unwrap_or_else(|p| p.into_inner()).retain(|n| n != &name);
        }
        r
    }

    fn probe_and_start(cfg: &DpdkConfig, name: &str, queues: u16) -> Result<Vec<DpdkDevice>, Error> {
        let devargs = CString::new(cfg.devargs.as_str()).map_err(|_| Error::new("devargs hold a NUL byte", 0))?;
        let cname = CString::new(name).map_err(|_| Error::new("device name holds a NUL byte", 0))?;
        let mut id = 0u16;
        // SAFETY: two valid C strings and a u16 to write, for the duration of the call; the
        // EAL is up (eal_init above).
        let rc = unsafe { xtcp_dpdk_probe(devargs.as_ptr(), cname.as_ptr(), &mut id) };
        if rc < 0 {
            return Err(Error::from_rc(format!("probing {:?}", cfg.devargs), rc));
        }
        // From here the port exists: the guard removes it on every error path.
        let mut port = Port { id, name: cname, pools: Vec::new() };
        let (mut max_rxq, mut max_txq, mut mac, mut max_len) = (0u16, 0u16, [0u8; 6], 0u32);
        // SAFETY: a probed port and valid places for the shim to write.
        let rc = unsafe { xtcp_dpdk_port_info(id, &mut max_rxq, &mut max_txq, mac.as_mut_ptr(), &mut max_len) };
        if rc < 0 {
            return Err(Error::from_rc(format!("{name}: reading the port's information"), rc));
        }
        if queues > max_rxq.min(max_txq) {
            return Err(Error::new(
                format!(
                    "{name} has {} queue pair(s), {queues} asked (af_packet: qpairs=N; af_xdp: queue_count=N)",
                    max_rxq.min(max_txq)
                ),
                libc::EINVAL,
            ));
        }
        let mut tables = Vec::new();
        for q in 0..queues {
            let pname = CString::new(format!("xtcp_{id}_{q}")).expect("no NUL");
            let mut table = vec![std::ptr::null_mut::<RteMbuf>(); cfg.pool_frames as usize];
            let (mut numbered, mut room, mut err) = (0u32, 0u16, 0 as c_int);
            // SAFETY: a valid name, a table with room for `pool_frames` pointers, and places
            // to write the count and the error; the EAL is up.
            let mp = unsafe {
                xtcp_dpdk_pool_create(
                    pname.as_ptr(),
                    cfg.pool_frames,
                    cfg.data_room,
                    table.as_mut_ptr(),
                    &mut numbered,
                    &mut room,
                    &mut err,
                )
            };
            if mp.is_null() {
                return Err(Error::from_rc(
                    format!("{name}: creating a pool of {} mbufs (more EAL memory: --eal '-m N')", cfg.pool_frames),
                    err,
                ));
            }
            port.pools.push(Pool(mp));
            table.truncate(numbered as usize);
            tables.push(table);
        }
        let pools: Vec<*mut RteMempool> = port.pools.iter().map(|p| p.0).collect();
        let mut offloads = 0u32;
        // SAFETY: a probed port and one valid pool per queue, all alive while the port is; a
        // u32 to write.
        let rc = unsafe {
            xtcp_dpdk_port_start(
                id,
                queues,
                cfg.ring_size,
                pools.as_ptr(),
                cfg.mtu.unwrap_or(0),
                c_int::from(cfg.checksum_offload),
                &mut offloads,
            )
        };
        if rc < 0 {
            return Err(Error::from_rc(format!("{name}: configuring and starting {queues} queue(s)"), rc));
        }
        let port = Arc::new(port);
        let rx_checksum = if cfg.trust_rx_l4_checksums { RxChecksum::TrustL4 } else { RxChecksum::Verify };
        let devs = tables
            .into_iter()
            .enumerate()
            .map(|(q, mbufs)| {
                let bufs = mbufs
                    .iter()
                    .map(|&m| {
                        let mut len = 0u16;
                        // SAFETY: `m` is an mbuf of this pool (numbered by the shim); its
                        // buffer address and length never change.
                        let p = unsafe { xtcp_dpdk_buffer(m, &mut len) };
                        (p, len)
                    })
                    .collect();
                let n = mbufs.len();
                DpdkDevice {
                    pool: pools[q],
                    port: Arc::clone(&port),
                    queue: q as u16,
                    mbufs,
                    bufs,
                    held: vec![false; n],
                    l4_good: vec![false; n],
                    partial: vec![false; n],
                    rx_l4_offload: offloads & RX_L4_CKSUM != 0,
                    tx_tcp_offload: offloads & TX_TCP_CKSUM != 0,
                    mac: MacAddr(mac),
                    rx_checksum,
                    stash: Vec::new(),
                    stats: DpdkStats::default(),
                    idx: [0; BURST],
                    off: [0; BURST],
                    len: [0; BURST],
                    flag: [0; BURST],
                }
            })
            .collect();
        Ok(devs)
    }

    /// The DPDK port id.
    pub fn port_id(&self) -> u16 {
        self.port.id
    }

    /// The queue pair this device uses.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// The device's name (`net_af_packet0`, …).
    pub fn name(&self) -> String {
        self.port.name.to_string_lossy().into_owned()
    }

    /// Whether the PMD reports the link up.
    pub fn link_up(&self) -> bool {
        // SAFETY: a started port.
        unsafe { xtcp_dpdk_link_up(self.port.id) == 1 }
    }

    /// The backend's counters.
    pub fn stats(&self) -> DpdkStats {
        self.stats
    }

    /// Frames the PMD could not receive for want of an mbuf (the port's, all queues).
    pub fn rx_nombuf(&self) -> u64 {
        // SAFETY: a started port.
        unsafe { xtcp_dpdk_rx_nombuf(self.port.id) }
    }

    /// Frames the caller holds now.
    pub fn frames_held(&self) -> usize {
        self.held.iter().filter(|&&h| h).count()
    }

    fn check(&self, f: &Frame) -> usize {
        let i = f.index as usize;
        assert!(self.held.get(i) == Some(&true), "frame {} is not held by the caller", f.index);
        assert!(
            f.offset as usize + f.len as usize <= self.bufs[i].1 as usize,
            "frame {}: {}+{} is outside its {}-byte buffer",
            f.index,
            f.offset,
            f.len,
            self.bufs[i].1
        );
        i
    }

    fn receive(&mut self, out: &mut Vec<Frame>, max: usize) -> usize {
        let want = max.min(BURST) as u16;
        let mut dropped = 0u32;
        // SAFETY: a started port and queue owned by this device; three arrays of BURST entries
        // for the shim to fill (want <= BURST).
        let n = unsafe {
            xtcp_dpdk_rx_burst(
                self.port.id,
                self.queue,
                self.idx.as_mut_ptr(),
                self.off.as_mut_ptr(),
                self.len.as_mut_ptr(),
                self.flag.as_mut_ptr(),
                want,
                &mut dropped,
            )
        } as usize;
        self.stats.rx_dropped += u64::from(dropped);
        let mut taken = 0;
        for k in 0..n {
            let i = self.idx[k] as usize;
            // The PMD fills its RX ring from this queue's pool only, so the index is ours;
            // checked anyway, because a wrong one would hand out a frame twice.
            if i >= self.held.len() || self.held[i] {
                self.stats.rx_dropped += 1;
                continue;
            }
            self.held[i] = true;
            let good = self.rx_l4_offload && self.flag[k] != 0;
            self.l4_good[i] = good;
            self.stats.rx_l4_verified += u64::from(good);
            out.push(Frame { index: i as u32, offset: u32::from(self.off[k]), len: u32::from(self.len[k]) });
            taken += 1;
        }
        self.stats.rx_frames += taken as u64;
        taken
    }

    fn send(&mut self, frames: &[Frame], keep: bool) -> usize {
        let n = frames.len().min(BURST);
        for (k, f) in frames.iter().take(n).enumerate() {
            self.check(f);
            self.idx[k] = f.index;
            self.off[k] = f.offset as u16;
            self.len[k] = f.len as u16;
            self.flag[k] = u8::from(self.partial[f.index as usize]);
        }
        let mut offloaded = 0u32;
        // SAFETY: a started port and queue owned by this device; `idx[..n]` name mbufs of the
        // table that the caller holds (checked), with offsets and lengths inside their
        // buffers (checked; buffers are under 64 KiB, so they fit u16).
        let sent = unsafe {
            xtcp_dpdk_tx_burst(
                self.port.id,
                self.queue,
                self.mbufs.as_ptr(),
                self.idx.as_ptr(),
                self.off.as_ptr(),
                self.len.as_ptr(),
                self.flag.as_ptr(),
                n as u16,
                c_int::from(keep),
                &mut offloaded,
            )
        } as usize;
        self.stats.tx_frames += sent as u64;
        self.stats.tx_l4_offloaded += u64::from(offloaded);
        sent
    }
}

impl Drop for DpdkDevice {
    fn drop(&mut self) {
        for f in std::mem::take(&mut self.stash) {
            self.recycle(f);
        }
    }
}

impl Device for DpdkDevice {
    fn frame_capacity(&self) -> usize {
        self.bufs.first().map_or(0, |b| b.1 as usize)
    }

    fn mac(&self) -> MacAddr {
        self.mac
    }

    fn rx_checksum(&self) -> RxChecksum {
        self.rx_checksum
    }

    fn rx_burst(&mut self, out: &mut Vec<Frame>, max: usize) -> usize {
        // What `wait` received first, in arrival order.
        let mut got = max.min(self.stash.len());
        out.extend(self.stash.drain(..got));
        if got < max {
            got += self.receive(out, max - got);
        }
        got
    }

    fn frame(&self, f: &Frame) -> &[u8] {
        let i = self.check(f);
        let (p, len) = self.bufs[i];
        // SAFETY: `p..p+len` is mbuf i's buffer, alive as long as its pool (held by `port`);
        // the caller holds the frame (checked), so no PMD writes it (DPDK writes only mbufs
        // of its RX ring, which the caller does not hold), and no `&mut` view exists while
        // `&self` is borrowed.
        let all = unsafe { std::slice::from_raw_parts(p, len as usize) };
        &all[f.offset as usize..(f.offset + f.len) as usize]
    }

    fn buffer_mut(&mut self, f: &Frame) -> &mut [u8] {
        let i = self.check(f);
        let (p, len) = self.bufs[i];
        // SAFETY: as in `frame`, and `&mut self` keeps every other view of the buffer away;
        // a frame still in flight (`in_flight`) must not be written, by the trait's contract.
        unsafe { std::slice::from_raw_parts_mut(p, len as usize) }
    }

    fn recycle(&mut self, f: Frame) {
        let i = self.check(&f);
        self.held[i] = false;
        self.partial[i] = false;
        // SAFETY: the caller held this mbuf (checked) and gives up its reference; a PMD still
        // sending it keeps its own, and the mbuf returns to the pool when that goes too.
        unsafe { xtcp_dpdk_free(self.mbufs[i]) };
    }

    fn alloc_tx(&mut self) -> Option<Frame> {
        // SAFETY: this device's pool.
        let i = unsafe { xtcp_dpdk_alloc(self.pool) } as usize;
        if i >= self.held.len() || self.held[i] {
            self.stats.alloc_failures += 1;
            return None;
        }
        self.held[i] = true;
        self.partial[i] = false;
        Some(Frame { index: i as u32, offset: 0, len: 0 })
    }

    fn tx_burst(&mut self, frames: &mut Vec<Frame>) -> usize {
        let mut total = 0;
        while !frames.is_empty() {
            let n = frames.len().min(BURST);
            let sent = self.send(&frames[..n], false);
            for f in frames.drain(..sent) {
                // The PMD owns it now (it frees it once sent).
                self.held[f.index as usize] = false;
                self.partial[f.index as usize] = false;
            }
            total += sent;
            if sent < n {
                self.stats.tx_refused += (frames.len()) as u64;
                break;
            }
        }
        total
    }

    fn tx_kept(&mut self, f: &Frame) -> bool {
        let sent = self.send(std::slice::from_ref(f), true) == 1;
        if sent {
            self.stats.tx_kept += 1;
        } else {
            self.stats.tx_kept_refused += 1;
        }
        sent
    }

    fn rx_checksum_of(&self, f: &Frame) -> RxChecksum {
        match self.l4_good.get(f.index as usize) {
            Some(true) => RxChecksum::TrustL4,
            _ => self.rx_checksum,
        }
    }

    fn tx_tcp_checksum_offload(&self) -> bool {
        self.tx_tcp_offload
    }

    fn set_l4_partial(&mut self, f: &Frame) {
        let i = self.check(f);
        self.partial[i] = true;
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let s = &self.stats;
        vec![
            ("rx_frames", s.rx_frames),
            ("tx_frames", s.tx_frames),
            ("tx_refused", s.tx_refused),
            ("alloc_failures", s.alloc_failures),
            ("rx_dropped", s.rx_dropped),
            ("rx_nombuf", self.rx_nombuf()),
            ("tx_kept", s.tx_kept),
            ("tx_kept_refused", s.tx_kept_refused),
            ("rx_l4_verified", s.rx_l4_verified),
            ("tx_l4_offloaded", s.tx_l4_offloaded),
            ("waits", s.waits),
            ("wait_wakeups", s.wait_wakeups),
            ("frames_held", self.frames_held() as u64),
            // SAFETY: this device's pool.
            ("pool_free", u64::from(unsafe { xtcp_dpdk_pool_avail(self.pool) })),
        ]
    }

    fn in_flight(&self, f: &Frame) -> bool {
        let Some(&m) = self.mbufs.get(f.index as usize) else { return false };
        // SAFETY: an mbuf of this pool; reading its reference count is atomic.
        unsafe { xtcp_dpdk_refcnt(m) > 1 }
    }

    fn wait(&mut self, timeout: crate::time::Duration) {
        // No wake-up to sleep on (see the module docs): look every 20 µs.
        self.stats.waits += 1;
        let end = std::time::Instant::now()
            + std::time::Duration::from_micros(timeout.as_micros().min(u128::from(u64::MAX)) as u64);
        loop {
            // Kept for the next rx_burst (its allocation too).
            let mut stash = std::mem::take(&mut self.stash);
            let got = self.receive(&mut stash, BURST);
            self.stash = stash;
            if got > 0 {
                self.stats.wait_wakeups += 1;
                return;
            }
            let now = std::time::Instant::now();
            if now >= end {
                return;
            }
            std::thread::sleep((end - now).min(std::time::Duration::from_micros(20)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_name_is_the_devargs_up_to_the_first_comma() {
        assert_eq!(DpdkConfig::new("net_af_packet0,iface=veth0,qpairs=2").name(), "net_af_packet0");
        assert_eq!(DpdkConfig::new("net_memif0").name(), "net_memif0");
    }

    #[test]
    fn default_eal_arguments_need_no_hugepages_and_keep_the_threads_cpus() {
        let args = default_eal_args();
        for a in ["--no-huge", "--no-pci", "--no-shconf", "--no-telemetry"] {
            assert!(args.iter().any(|x| x == a), "{a} missing from {args:?}");
        }
        let lcores = &args[args.iter().position(|a| a == "--lcores").expect("--lcores") + 1];
        let allowed = core_affinity::get_core_ids().unwrap_or_default();
        for c in &allowed {
            assert!(lcores.contains(&c.id.to_string()), "CPU {} not in {lcores}", c.id);
        }
    }

    #[test]
    fn zero_queues_is_refused_before_the_eal_starts() {
        let e = DpdkDevice::open_queues(&DpdkConfig::new("net_null0"), 0).unwrap_err();
        assert!(e.to_string().contains("at least one queue"), "{e}");
        assert!(eal_args().is_none(), "the EAL was started for a refused open");
    }
}
