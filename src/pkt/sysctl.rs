//! The `sysctl` lines of the public suites (FreeBSD's `net.inet.tcp.*` and `kern.ipc.*`,
//! Linux's `net.ipv4.tcp_*`), mapped to the settings new sockets start from, as the running
//! kernel would take them. A setting xtcp has is applied; one it does not have is refused
//! with the reason (the line is then unsupported: skipped under `--lenient`, a failure
//! otherwise); a mode xtcp lacks (FreeBSD's RFC 793 handling of resets and SYNs, dropping
//! SYN-FIN, blackholing) changes what the whole script expects, so it skips the script under
//! `--lenient`. A script never passes on a knob that was ignored.

use crate::tcp::cc::Algorithm;
use crate::tcp::{EcnMode, TcpConfig};
use crate::time::Duration;

/// The largest buffer a script may set (as `SO_RCVBUF` / `SO_SNDBUF`).
const MAX_BUFFER: usize = 1 << 30;

/// Why a line was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not a setting xtcp has (or not a sysctl): the line is unsupported.
    Line(String),
    /// A behaviour xtcp does not have: everything the script expects after it is about that.
    Script(String),
}

/// Apply `sysctl [-w|-q|-n ...] NAME=VALUE ...` to `base`: all or nothing.
pub fn apply(cmd: &str, base: &mut TcpConfig) -> Result<(), Refused> {
    let mut words = cmd.split_whitespace();
    if words.next() != Some("sysctl") {
        return Err(Refused::Line(format!("shell command `{}`", cmd.trim())));
    }
    let mut cfg = base.clone();
    let mut any = false;
    for w in words.filter(|w| !w.starts_with('-')) {
        let Some((name, value)) = w.split_once('=') else {
            return Err(Refused::Line(format!("sysctl `{w}` (a read: nothing to check it against)")));
        };
        set(&mut cfg, &name.replace('/', "."), value.trim_matches('"'))?;
        any = true;
    }
    if !any {
        return Err(Refused::Line(format!("shell command `{}`", cmd.trim())));
    }
    *base = cfg;
    Ok(())
}

fn set(cfg: &mut TcpConfig, name: &str, value: &str) -> Result<(), Refused> {
    let line = |why: String| Refused::Line(why);
    let int = || value.parse::<u64>().map_err(|_| line(format!("sysctl {name}={value} (not a number)")));
    let flag = || match int()? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(line(format!("sysctl {name}={v} (0 or 1)"))),
    };
    let buffer = || match int()? as usize {
        b @ 1..=MAX_BUFFER => Ok(b),
        b => Err(line(format!("sysctl {name}={b} (1 to {MAX_BUFFER} bytes)"))),
    };
    // A behaviour xtcp has one way only.
    let only = |ok: u64, what: &str| match int()? {
        v if v == ok => Ok(()),
        v => Err(Refused::Script(format!("sysctl {name}={v} ({what})"))),
    };
    match name {
        // FreeBSD (tcp(4)).
        "net.inet.tcp.rfc1323" => {
            let (ws, ts) = match int()? {
                0 => (false, false),
                1 => (true, true),
                2 => (true, false),
                3 => (false, true),
                v => return Err(line(format!("sysctl {name}={v} (0 to 3)"))),
            };
            (cfg.window_scaling, cfg.timestamps) = (ws, ts);
        }
        "net.inet.tcp.sack.enable" | "net.ipv4.tcp_sack" => cfg.sack = flag()?,
        "net.inet.tcp.ecn.enable" | "net.ipv4.tcp_ecn" => {
            cfg.ecn = match int()? {
                0 => EcnMode::Off,
                1 => EcnMode::On,
                2 => EcnMode::Passive,
                v => return Err(line(format!("sysctl {name}={v} (0, 1 or 2)"))),
            }
        }
        "net.inet.tcp.recvspace" => cfg.recv_buffer = buffer()?,
        "net.inet.tcp.sendspace" => cfg.send_buffer = buffer()?,
        // FreeBSD sizes the window scale by the largest socket buffer allowed.
        "kern.ipc.maxsockbuf" => cfg.recv_buffer_max = buffer()?,
        "net.inet.tcp.rexmit_initial" => {
            let rto = Duration::from_millis(int()?);
            if rto < cfg.min_rto || rto > cfg.max_rto {
                return Err(line(format!("sysctl {name}={value} (outside the RTO bounds)")));
            }
            cfg.initial_rto = rto;
        }
        // RFC 1122 §4.2.3.2: under 0.5 s.
        "net.inet.tcp.delacktime" => match int()? {
            ms @ 1..=499 => cfg.delayed_ack = Duration::from_millis(ms),
            v => return Err(line(format!("sysctl {name}={v} (1 to 499 ms)"))),
        },
        "net.inet.tcp.rexmit_min" => {
            let rto = Duration::from_millis(int()?);
            if rto.is_zero() || rto > cfg.initial_rto {
                return Err(line(format!("sysctl {name}={value} (1 ms up to the initial RTO)")));
            }
            cfg.min_rto = rto;
        }
        // What xtcp always does: answer with resets, apply RFC 5961's checks to resets and
        // SYNs, take a SYN that carries FIN as a SYN (as Linux), keep no host cache.
        "net.inet.tcp.blackhole" => only(0, "xtcp always answers with resets")?,
        "net.inet.tcp.insecure_rst" => only(0, "xtcp always checks resets as RFC 5961 §3 says")?,
        "net.inet.tcp.insecure_syn" => only(0, "xtcp always checks SYNs as RFC 5961 §4 says")?,
        "net.inet.tcp.drop_synfin" => only(0, "xtcp takes a SYN with FIN as a SYN, as Linux")?,
        "net.inet.tcp.hostcache.purgenow" => {
            int()?;
        }
        // Linux (ip-sysctl.rst).
        "net.ipv4.tcp_timestamps" => {
            cfg.timestamps = match int()? {
                0 => false,
                1 | 2 => true,
                v => return Err(line(format!("sysctl {name}={v} (0, 1 or 2)"))),
            }
        }
        "net.ipv4.tcp_window_scaling" => cfg.window_scaling = flag()?,
        "net.ipv4.tcp_frto" => cfg.frto = int()? != 0,
        // 3 and 4 (the default): tail loss probes; 0 to 2: none.
        "net.ipv4.tcp_early_retrans" => cfg.tail_loss_probe = int()? >= 3,
        "net.ipv4.tcp_congestion_control" => {
            cfg.congestion = match value {
                "cubic" => Algorithm::Cubic,
                "reno" => Algorithm::Reno,
                "bbr" => Algorithm::Bbr,
                v => return Err(line(format!("sysctl {name}={v} (cubic, reno or bbr)"))),
            }
        }
        _ => return Err(line(format!("sysctl {name} (no such setting in xtcp)"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freebsd_and_linux_settings_map_to_the_config() {
        let mut c = TcpConfig::default();
        apply("sysctl -w net.inet.tcp.recvspace=65536", &mut c).unwrap();
        apply("sysctl -w net.inet.tcp.sendspace=32768", &mut c).unwrap();
        apply("sysctl -w kern.ipc.maxsockbuf=2097152", &mut c).unwrap();
        assert_eq!((c.recv_buffer, c.send_buffer), (65536, 32768));
        assert_eq!(c.window_shift(), 6, "FreeBSD's scale for a 2 MiB sb_max");
        apply("sysctl -w net.inet.tcp.rfc1323=2", &mut c).unwrap();
        assert!(c.window_scaling && !c.timestamps);
        apply("sysctl -w net.inet.tcp.ecn.enable=1", &mut c).unwrap();
        assert_eq!(c.ecn, EcnMode::On);
        apply("sysctl -q net.ipv4.tcp_sack=0 net.ipv4.tcp_congestion_control=reno", &mut c).unwrap();
        assert!(!c.sack);
        assert_eq!(c.congestion, Algorithm::Reno);
        apply("sysctl -q net/ipv4/tcp_early_retrans=0", &mut c).unwrap();
        assert!(!c.tail_loss_probe);
        apply("sysctl -w net.inet.tcp.rexmit_initial=1000", &mut c).unwrap();
        assert_eq!(c.initial_rto, Duration::from_secs(1));
        apply("sysctl -w net.inet.tcp.delacktime=100", &mut c).unwrap();
        assert_eq!(c.delayed_ack, Duration::from_millis(100));
    }

    #[test]
    fn what_xtcp_cannot_honour_is_refused_and_changes_nothing() {
        let mut c = TcpConfig::default();
        let before = c.clone();
        for cmd in [
            "sysctl -w net.inet.tcp.insecure_rst=1",
            "sysctl -w net.inet.tcp.drop_synfin=1",
            "sysctl -w net.inet.tcp.blackhole=2",
        ] {
            assert!(matches!(apply(cmd, &mut c), Err(Refused::Script(_))), "{cmd}");
        }
        for cmd in [
            "sysctl -q net.ipv4.tcp_fastopen=1",
            "sysctl -w net.inet.tcp.recvspace=0",
            "sysctl net.inet.tcp.recvspace",
            "ip link set lo up",
        ] {
            assert!(matches!(apply(cmd, &mut c), Err(Refused::Line(_))), "{cmd}");
        }
        assert!(apply("sysctl -w net.inet.tcp.sack.enable=0 net.inet.tcp.insecure_syn=1", &mut c).is_err());
        assert_eq!(c, before, "a refused line changes nothing, even its honoured parts");
        apply("sysctl -w net.inet.tcp.insecure_rst=0 net.inet.tcp.drop_synfin=0", &mut c).unwrap();
    }
}
