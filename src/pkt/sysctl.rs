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
use std::path::Path;

/// How deep `defaults.sh`-style files may include one another.
const MAX_INCLUDE_DEPTH: usize = 2;

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

/// Apply a backtick shell command as the public suites write them, to `base`. Commands are
/// separated by newlines or `;`:
/// - `sysctl [-w|-q|-e ...] NAME=VALUE ...` (all of one command or none of it);
/// - packetdrill's `set_sysctls.py /proc/sys/NAME=VALUE ...`;
/// - a `defaults.sh` (the gtests' `../common/defaults.sh`): its own lines, read from the
///   script's folder `dir`, as the shell would run them;
/// - `ethtool -K DEV tso off gso off ...`: turning offloads off is what xtcp is (it has no
///   segmentation or receive offload), so there is nothing to change.
///
/// Everything xtcp can honour is applied; what it cannot is refused with the reasons (the line
/// is then unsupported), and a mode xtcp lacks refuses the script.
pub fn apply(cmd: &str, base: &mut TcpConfig, dir: Option<&Path>) -> Result<(), Refused> {
    apply_nested(cmd, base, dir, 0)
}

fn apply_nested(cmd: &str, base: &mut TcpConfig, dir: Option<&Path>, depth: usize) -> Result<(), Refused> {
    let mut refused = Vec::new();
    let joined = cmd.replace("\\\n", " ");
    for c in joined.split(['\n', ';']).map(str::trim).filter(|c| !c.is_empty() && !c.starts_with('#')) {
        match apply_one(c, base, dir, depth) {
            Ok(()) => {}
            Err(Refused::Line(why)) => refused.push(why),
            Err(script) => return Err(script),
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(Refused::Line(refused.join("; ")))
    }
}

fn apply_one(cmd: &str, base: &mut TcpConfig, dir: Option<&Path>, depth: usize) -> Result<(), Refused> {
    let words = shell_words(cmd);
    let Some(first) = words.first() else { return Ok(()) };
    let shell = || Refused::Line(format!("shell command `{}`", cmd.trim()));
    if first == "sysctl" {
        return sysctl(&words[1..], base, cmd);
    }
    if first.ends_with("set_sysctls.py") {
        let mut cfg = base.clone();
        for w in &words[1..] {
            let Some((path, value)) = w.split_once('=') else { return Err(shell()) };
            let Some(name) = path.strip_prefix("/proc/sys/") else { return Err(shell()) };
            set(&mut cfg, &name.replace('/', "."), value)?;
        }
        *base = cfg;
        return Ok(());
    }
    if first.ends_with("defaults.sh") && depth < MAX_INCLUDE_DEPTH {
        let Some(file) = dir.map(|d| d.join(first)) else { return Err(shell()) };
        let Ok(text) = std::fs::read_to_string(&file) else {
            return Err(Refused::Line(format!("shell command `{}` (cannot read {})", cmd.trim(), file.display())));
        };
        return apply_nested(&text, base, file.parent(), depth + 1);
    }
    // xtcp keeps no per-destination metrics, and has no queueing discipline: pfifo, the one
    // that neither paces nor reorders, is what it is.
    if first == "ip" && words.get(1).is_some_and(|w| w == "tcp_metrics") && words.get(2).is_some_and(|w| w == "flush") {
        return Ok(());
    }
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    if matches!(w[..], ["tc", "qdisc", "add" | "replace", "dev", _, "root", "pfifo"]) {
        return Ok(());
    }
    if first == "ethtool" && words.get(1).is_some_and(|w| w == "-K") && words.len() > 3 {
        // `ethtool -K DEV FEATURE off ...`: every feature named is turned off.
        let pairs: Vec<_> = words[3..].chunks(2).collect();
        if pairs.iter().all(|p| p.len() == 2 && p[1] == "off" && matches!(p[0].as_str(), "tso" | "gso" | "gro" | "lro"))
        {
            return Ok(());
        }
    }
    Err(shell())
}

/// `sysctl`'s arguments: every `NAME=VALUE` of the command, or none.
fn sysctl(args: &[String], base: &mut TcpConfig, cmd: &str) -> Result<(), Refused> {
    let mut cfg = base.clone();
    let mut any = false;
    for w in args.iter().filter(|w| !w.starts_with('-')) {
        let Some((name, value)) = w.split_once('=') else {
            return Err(Refused::Line(format!("sysctl `{w}` (a read: nothing to check it against)")));
        };
        set(&mut cfg, &name.replace('/', "."), value)?;
        any = true;
    }
    if !any {
        return Err(Refused::Line(format!("shell command `{}`", cmd.trim())));
    }
    *base = cfg;
    Ok(())
}

/// A command's words, with double-quoted parts kept whole (quotes removed), a `#` comment
/// dropped, and `$((A*B))` products evaluated, as the suites' `tcp_rmem="4096 540000 $((15*1024*1024))"` needs.
fn shell_words(cmd: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in cmd.chars() {
        match ch {
            // A comment runs to the end of the command.
            '#' if !quoted && cur.is_empty() => break,
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    // Output redirections (`> /dev/null 2>&1`) change nothing here.
    let mut out = Vec::new();
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        match w.as_str() {
            ">" | ">>" | "2>" | "1>" => {
                it.next();
            }
            w if w.starts_with('>') || w.starts_with("2>") || w.starts_with("1>") => {}
            _ => out.push(arithmetic(&w)),
        }
    }
    out
}

/// `$((A*B*...))` inside a word, replaced by the product (other expressions stay as written,
/// and then fail to parse as numbers).
fn arithmetic(w: &str) -> String {
    let mut out = w.to_string();
    while let Some(i) = out.find("$((") {
        let Some(j) = out[i..].find("))").map(|j| i + j) else { break };
        let product = out[i + 3..j]
            .split('*')
            .map(|f| f.trim().parse::<u64>().ok())
            .try_fold(1u64, |acc, f| f.and_then(|f| acc.checked_mul(f)));
        let Some(v) = product else { break };
        out.replace_range(i..j + 2, &v.to_string());
    }
    out
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
        "net.inet.tcp.icmp_may_rst" => cfg.icmp_aborts_open = flag()?,
        "net.inet.tcp.ecn.maxretries" => cfg.ecn_syn_retries = int()? as u32,
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
        // "min default max": new sockets start at the default and may grow to the maximum.
        "net.ipv4.tcp_rmem" | "net.ipv4.tcp_wmem" => {
            let v: Vec<usize> = value
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| line(format!("sysctl {name}=\"{value}\" (three numbers: min, default, max)")))?;
            let [_, default @ 1..=MAX_BUFFER, max] = v[..] else {
                return Err(line(format!("sysctl {name}=\"{value}\" (three numbers: min, default, max)")));
            };
            if max < default || max > MAX_BUFFER {
                return Err(line(format!("sysctl {name}=\"{value}\" (max below default or above {MAX_BUFFER})")));
            }
            if name.ends_with("rmem") {
                (cfg.recv_buffer, cfg.recv_buffer_max) = (default, max);
            } else {
                (cfg.send_buffer, cfg.send_buffer_max) = (default, max);
            }
        }
        "net.ipv4.tcp_syn_retries" => match int()? {
            n @ 1..=127 => cfg.syn_retries = n as u32,
            v => return Err(line(format!("sysctl {name}={v} (1 to 127)"))),
        },
        "net.ipv4.tcp_synack_retries" => match int()? {
            n @ 1..=255 => cfg.synack_retries = n as u32,
            v => return Err(line(format!("sysctl {name}={v} (1 to 255)"))),
        },
        "net.ipv4.tcp_slow_start_after_idle" => cfg.slow_start_after_idle = flag()?,
        "net.ipv4.tcp_min_tso_segs" => match int()? {
            n @ 1..=255 => cfg.min_tso_segs = n as u8,
            v => return Err(line(format!("sysctl {name}={v} (1 to 255)"))),
        },
        // What xtcp always does: D-SACK (RFC 2883), RACK-TLP loss detection (RFC 8985), a
        // duplicate threshold of 3; FACK is gone from Linux too (the knob has no effect).
        "net.ipv4.tcp_dsack" => only(1, "xtcp always sends D-SACK blocks")?,
        "net.ipv4.tcp_recovery" => only(1, "xtcp always detects losses with RACK")?,
        "net.ipv4.tcp_reordering" => only(3, "xtcp's duplicate threshold is 3")?,
        "net.ipv4.tcp_fack" => {
            int()?;
        }
        // No limit on unsent data in the send buffer is the only setting xtcp has.
        "net.ipv4.tcp_notsent_lowat" => only(u64::from(u32::MAX), "xtcp has no TCP_NOTSENT_LOWAT")?,
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
        apply("sysctl -w net.inet.tcp.recvspace=65536", &mut c, None).unwrap();
        apply("sysctl -w net.inet.tcp.sendspace=32768", &mut c, None).unwrap();
        apply("sysctl -w kern.ipc.maxsockbuf=2097152", &mut c, None).unwrap();
        assert_eq!((c.recv_buffer, c.send_buffer), (65536, 32768));
        assert_eq!(c.window_shift(), 6, "FreeBSD's scale for a 2 MiB sb_max");
        apply("sysctl -w net.inet.tcp.rfc1323=2", &mut c, None).unwrap();
        assert!(c.window_scaling && !c.timestamps);
        apply("sysctl -w net.inet.tcp.ecn.enable=1", &mut c, None).unwrap();
        assert_eq!(c.ecn, EcnMode::On);
        apply("sysctl -q net.ipv4.tcp_sack=0 net.ipv4.tcp_congestion_control=reno", &mut c, None).unwrap();
        assert!(!c.sack);
        assert_eq!(c.congestion, Algorithm::Reno);
        apply("sysctl -q net/ipv4/tcp_early_retrans=0", &mut c, None).unwrap();
        assert!(!c.tail_loss_probe);
        apply("sysctl -w net.inet.tcp.rexmit_initial=1000", &mut c, None).unwrap();
        assert_eq!(c.initial_rto, Duration::from_secs(1));
        apply("sysctl -w net.inet.tcp.delacktime=100", &mut c, None).unwrap();
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
            assert!(matches!(apply(cmd, &mut c, None), Err(Refused::Script(_))), "{cmd}");
        }
        for cmd in [
            "sysctl -q net.ipv4.tcp_fastopen=1",
            "sysctl -w net.inet.tcp.recvspace=0",
            "sysctl net.inet.tcp.recvspace",
            "ip link set lo up",
        ] {
            assert!(matches!(apply(cmd, &mut c, None), Err(Refused::Line(_))), "{cmd}");
        }
        assert!(apply("sysctl -w net.inet.tcp.sack.enable=0 net.inet.tcp.insecure_syn=1", &mut c, None).is_err());
        assert_eq!(c, before, "a refused line changes nothing, even its honoured parts");
        apply("sysctl -w net.inet.tcp.insecure_rst=0 net.inet.tcp.drop_synfin=0", &mut c, None).unwrap();
    }

    #[test]
    fn shell_blocks_as_the_gtests_write_them() {
        let dir = std::env::temp_dir().join(format!("xtcp-sysctl-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("common")).unwrap();
        std::fs::create_dir_all(dir.join("nagle")).unwrap();
        std::fs::write(
            dir.join("common/defaults.sh"),
            "#!/bin/bash\n# comment\nsysctl -q net.ipv4.tcp_rmem=\"4096 540000 $((15*1024*1024))\"\n\
             sysctl -q net.ipv4.tcp_ecn=0 # off\nsysctl -q net.ipv4.tcp_notsent_lowat=4294967295 > /dev/null 2>&1\n\
             ip tcp_metrics flush all > /dev/null 2>&1\ntc qdisc add dev tun0 root pfifo\n",
        )
        .unwrap();
        let mut c = TcpConfig::default();
        let block = "../common/defaults.sh\nethtool -K tun0 tso off gso off\n\
                     ../common/set_sysctls.py /proc/sys/net/ipv4/tcp_timestamps=0 \\\n   /proc/sys/net/ipv4/tcp_min_tso_segs=10";
        apply(block, &mut c, Some(&dir.join("nagle"))).unwrap();
        assert_eq!((c.recv_buffer, c.recv_buffer_max), (540_000, 15 << 20));
        assert_eq!(c.ecn, EcnMode::Off);
        assert!(!c.timestamps);
        assert_eq!(c.min_tso_segs, 10);
        // What cannot be honoured is reported; the rest of the block is applied.
        let mut c = TcpConfig::default();
        let r = apply(
            "sysctl -q net.ipv4.tcp_fastopen=1\nsysctl -q net.ipv4.tcp_sack=0\ntc qdisc replace dev tun0 root fq",
            &mut c,
            None,
        );
        let Err(Refused::Line(why)) = r else { panic!("{r:?}") };
        assert!(why.contains("tcp_fastopen") && why.contains("fq"), "{why}");
        assert!(!c.sack);
        // A defaults.sh that is not there is reported, not guessed.
        assert!(matches!(apply("../common/defaults.sh", &mut c, Some(&dir)), Err(Refused::Line(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
