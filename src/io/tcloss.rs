//! Random loss of TCP segments on a kernel interface, for tests and benchmarks: the kernel
//! here has no netem (AFXDP-NOTES.md), so `bpf/loss.bpf.c` does it with tc (clsact) programs.
//!
//! A drop must look like loss on the wire to both ends: on *ingress* the program returns
//! `TC_ACT_SHOT` (the frame was received; the sender cannot tell), on *egress* `TC_ACT_STOLEN`
//! (SHOT there would be reported to the local sender as local congestion; see the program's
//! header). Only IPv4 TCP is dropped, and counted.
//!
//! The programs attach to an interface of the network namespace of the *calling thread*
//! (tc works over netlink, per namespace): attach, change rates, read counters and detach from
//! a thread in that namespace. Dropping a [`TcLoss`](crate::io::tcloss::TcLoss) detaches it (and removes the clsact
//! qdisc) if the dropping thread is in that namespace; elsewhere the same ifindex names
//! another interface, so nothing is touched (deleting the namespace removes the programs).

use libbpf_rs::{MapCore, MapFlags, MapHandle, ObjectBuilder, TcHook, TC_EGRESS, TC_INGRESS};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

/// The calling thread's network namespace (its inode), to refuse detaching from another.
fn netns_id() -> Option<u64> {
    std::fs::metadata("/proc/thread-self/ns/net").ok().map(|m| m.ino())
}

/// The compiled `bpf/loss.bpf.c` (build.rs).
const LOSS_OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/loss.bpf.o"));

/// TCP frames seen and dropped in one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    /// IPv4 TCP frames the program saw.
    pub seen: u64,
    /// Of those, frames it dropped.
    pub dropped: u64,
    /// Of the dropped, those that carried data (a sender must repair them; pure ACKs, SYNs
    /// and FINs are not counted here).
    pub dropped_data: u64,
}

impl Seen {
    /// The share dropped.
    pub fn share(&self) -> f64 {
        self.dropped as f64 / (self.seen.max(1)) as f64
    }
}

/// The loss programs on one interface.
pub struct TcLoss {
    hooks: Vec<TcHook>,
    rate: MapHandle,
    counters: MapHandle,
    netns: Option<u64>,
    detached: bool,
}

impl core::fmt::Debug for TcLoss {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TcLoss").field("hooks", &self.hooks.len()).finish_non_exhaustive()
    }
}

/// A share in 0..=1 as the program's threshold (drop when a random u32 is below it).
fn threshold(share: f64) -> u32 {
    (share.clamp(0.0, 1.0) * 4_294_967_295.0) as u32
}

impl TcLoss {
    /// Attach to interface `ifindex` (of the calling thread's namespace), dropping `ingress`
    /// of the TCP frames it receives and `egress` of those it sends (shares, 0..=1).
    pub fn attach(ifindex: i32, ingress: f64, egress: f64) -> Result<TcLoss, String> {
        let obj = ObjectBuilder::default()
            .open_memory(LOSS_OBJ)
            .and_then(|o| o.load())
            .map_err(|e| format!("loading bpf/loss.bpf.c: {e:#}"))?;
        let map = |name: &str| -> Result<MapHandle, String> {
            let m = obj.maps().find(|m| m.name() == name).ok_or_else(|| format!("no map {name}"))?;
            MapHandle::try_from(&m).map_err(|e| format!("map {name}: {e}"))
        };
        let rate = map("rate")?;
        let counters = map("counters")?;
        let mut loss = TcLoss { hooks: Vec::new(), rate, counters, netns: netns_id(), detached: false };
        loss.set_rates(ingress, egress)?;
        for (prog, point) in [("loss_ingress", TC_INGRESS), ("loss_egress", TC_EGRESS)] {
            let p = obj.progs().find(|p| p.name() == prog).ok_or_else(|| format!("no program {prog}"))?;
            let mut hook = TcHook::new(p.as_fd());
            hook.ifindex(ifindex).replace(true).handle(1).priority(1).attach_point(point);
            if loss.hooks.is_empty() {
                hook.create().map_err(|e| format!("clsact on ifindex {ifindex}: {e}"))?;
            }
            loss.hooks.push(hook.attach().map_err(|e| format!("attaching {prog}: {e}"))?);
        }
        // The filters hold the programs, the programs their maps: `obj` may go.
        Ok(loss)
    }

    /// Change the shares dropped.
    pub fn set_rates(&self, ingress: f64, egress: f64) -> Result<(), String> {
        for (dir, share) in [(0u32, ingress), (1u32, egress)] {
            self.rate
                .update(&dir.to_ne_bytes(), &threshold(share).to_ne_bytes(), MapFlags::ANY)
                .map_err(|e| format!("setting the rate: {e}"))?;
        }
        Ok(())
    }

    /// What the programs saw and dropped since they were attached: (ingress, egress).
    pub fn counts(&self) -> (Seen, Seen) {
        let slot = |i: u32| -> u64 {
            match self.counters.lookup_percpu(&i.to_ne_bytes(), MapFlags::ANY) {
                Ok(Some(per_cpu)) => per_cpu
                    .iter()
                    .map(|v| v.get(..8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_ne_bytes))
                    .sum(),
                _ => 0,
            }
        };
        (
            Seen { seen: slot(0), dropped: slot(1), dropped_data: slot(4) },
            Seen { seen: slot(2), dropped: slot(3), dropped_data: slot(5) },
        )
    }

    /// Detach both programs and remove the clsact qdisc. Only from a thread in the namespace
    /// they were attached in; returns whether it did.
    pub fn detach(&mut self) -> bool {
        if self.detached {
            return true;
        }
        if netns_id() != self.netns {
            return false;
        }
        self.detached = true;
        for h in &mut self.hooks {
            let _ = h.detach();
        }
        if let Some(mut h) = self.hooks.first().copied() {
            // Both attach points: removes the clsact qdisc itself.
            let _ = h.attach_point(TC_INGRESS | TC_EGRESS).destroy();
        }
        true
    }
}

impl Drop for TcLoss {
    fn drop(&mut self) {
        self.detach();
    }
}
