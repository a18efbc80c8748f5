//! `--backend dpdk`: the CLI's DPDK ports (xtcp::io::dpdk).
#![cfg_attr(not(feature = "dpdk"), allow(dead_code))]

/// What a build without the `dpdk` feature says to `--backend dpdk`.
#[cfg(not(feature = "dpdk"))]
pub const MISSING: &str =
    "--backend dpdk: this xtcp was built without DPDK (cargo build --features dpdk, with libdpdk-dev installed)";

#[cfg(feature = "dpdk")]
pub use with_dpdk::{open, open_queues};

#[cfg(feature = "dpdk")]
mod with_dpdk {
    use crate::NetArgs;
    use xtcp::io::dpdk::{DpdkConfig, DpdkDevice};
    use xtcp::io::Device;

    fn config(net: &NetArgs) -> Result<DpdkConfig, String> {
        let devargs = match (&net.vdev, &net.iface) {
            (Some(v), _) => v.clone(),
            (None, Some(i)) => format!("net_af_packet0,iface={i}"),
            (None, None) => return Err("--backend dpdk needs --vdev (or --iface, for net_af_packet)".into()),
        };
        let mut cfg = DpdkConfig::new(devargs);
        if let Some(eal) = &net.eal {
            cfg.eal_args = eal.split_whitespace().map(str::to_string).collect();
        }
        Ok(cfg)
    }

    /// Turn DPDK's answer into what the user should do about it.
    fn explain(cfg: &DpdkConfig, e: xtcp::io::dpdk::Error) -> String {
        let hint = match e.errno {
            libc::EPERM | libc::EACCES => " (DPDK's virtual devices need root)",
            libc::ENODEV | libc::ENOENT | libc::EINVAL if e.what.starts_with("probing") => {
                " (is the driver's name right, and its interface in this network namespace? \
                 Debian's PMDs are in /usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0)"
            }
            libc::EBUSY | libc::EEXIST => " (in use: another xtcp or XDP program on that interface?)",
            _ => "",
        };
        format!("DPDK {:?}: {e}{hint}", cfg.devargs)
    }

    fn report(d: &DpdkDevice) {
        eprintln!(
            "xtcp: DPDK port {} ({}) queue {}: MAC {}, link {}",
            d.port_id(),
            d.name(),
            d.queue(),
            d.mac(),
            if d.link_up() { "up" } else { "down" }
        );
    }

    /// One queue (`serve` on one core, `client`, `ping`).
    pub fn open(net: &NetArgs) -> Result<DpdkDevice, String> {
        if net.cores != 1 {
            return Err(format!("--cores {}: `client` and `ping` run on one core (--cores 1)", net.cores));
        }
        let cfg = config(net)?;
        let d = DpdkDevice::open(&cfg).map_err(|e| explain(&cfg, e))?;
        report(&d);
        Ok(d)
    }

    /// One queue per core (`serve --cores N`).
    pub fn open_queues(net: &NetArgs, cores: usize) -> Result<Vec<DpdkDevice>, String> {
        let cfg = config(net)?;
        let n = u16::try_from(cores).map_err(|_| format!("--cores {cores}: too many"))?;
        let devs = DpdkDevice::open_queues(&cfg, n).map_err(|e| explain(&cfg, e))?;
        devs.iter().for_each(report);
        Ok(devs)
    }
}
