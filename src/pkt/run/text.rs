//! Text: integer expressions, and how calls, segments and options are written in failures and
//! traces (script notation).

use super::*;
use core::net::IpAddr;

/// Evaluate an integer expression: numbers, named constants, `A|B`, `[x]`.
pub(in crate::pkt) fn eval_int(e: &Expr) -> Result<i64, String> {
    match e {
        Expr::Int(v) => Ok(*v),
        Expr::Sym(name) => lookup(name).ok_or_else(|| format!("unknown symbol `{name}`")),
        Expr::Or(items) => items.iter().try_fold(0, |acc, e| eval_int(e).map(|v| acc | v)),
        Expr::List(items) if items.len() == 1 => eval_int(&items[0]),
        Expr::Call(f, args) if f == "htons" || f == "htonl" || f == "ntohs" || f == "ntohl" => match args.as_slice() {
            [a] => eval_int(a),
            _ => Err(format!("`{f}` takes one argument")),
        },
        other => Err(format!("expected an integer, found `{other}`")),
    }
}

pub(super) fn show_ret(r: SysRet) -> String {
    match r {
        SysRet::Ok(v) => v.to_string(),
        SysRet::Err(e) => format!("-1 {}", errno_name(e)),
        SysRet::Block => "(would block)".into(),
    }
}

pub(super) fn call_text(s: &Syscall) -> String {
    let args: Vec<String> = s.args.iter().map(ToString::to_string).collect();
    format!("{}({})", s.name, args.join(", "))
}

pub(super) fn describe_action(a: &Action) -> String {
    match a {
        Action::Packet(p) => expected_line(p),
        Action::Syscall(s) => format!("{} = {}", call_text(s), s.ret),
        Action::Command(c) => format!("`{}`", c.trim()),
        Action::Code(_) => "%{ ... }%".into(),
        Action::Unsupported { what } => format!("({what})"),
        Action::Icmp(i) => icmp_text(i),
    }
}

pub(super) fn icmp_text(i: &IcmpPacket) -> String {
    let dir = if i.dir == Direction::Inbound { '<' } else { '>' };
    let code = i.code.as_deref().map(|c| format!(" {c}")).unwrap_or_default();
    let mtu = i.mtu.map(|m| format!(" mtu {m}")).unwrap_or_default();
    format!("{dir} icmp {}{code}{mtu} [{}:{}({})]", i.kind, i.seq, i.seq.wrapping_add(i.len), i.len)
}

pub(super) fn options_text(opts: &[TcpOpt]) -> String {
    let parts: Vec<String> = opts.iter().map(ToString::to_string).collect();
    format!("<{}>", parts.join(","))
}

/// A script packet line as the script wrote it (normalised).
pub(in crate::pkt) fn expected_line(p: &Packet) -> String {
    let mut s = format!(
        "{} {} {}:{}({})",
        if p.dir == Direction::Inbound { '<' } else { '>' },
        p.flags,
        p.seq,
        p.seq.wrapping_add(p.len),
        p.len
    );
    if let Some(a) = p.ack {
        let _ = write!(s, " ack {a}");
    }
    if let Some(w) = p.win {
        let _ = write!(s, " win {w}");
    }
    if let Some(u) = p.urg {
        let _ = write!(s, " urg {u}");
    }
    match &p.options {
        None => s.push_str(" <...>"),
        Some(o) if o.is_empty() => {}
        Some(o) => {
            s.push(' ');
            s.push_str(&options_text(o));
        }
    }
    s
}

/// A segment the stack sent, in script notation (sequence numbers mapped into the script's
/// space).
pub(in crate::pkt) fn script_line(flow: &Flow, seg: &OutSeg) -> String {
    let seq = flow.local_to_script(seg.seq);
    let len = seg.payload.len() as u32;
    let mut s = format!("> {} {}:{}({})", seg.flags, seq, seq.wrapping_add(len), len);
    if seg.flags.ack || seg.ack != 0 {
        let _ = write!(s, " ack {}", seg.ack);
    }
    let _ = write!(s, " win {}", seg.window);
    if seg.urgent != 0 {
        let _ = write!(s, " urg {}", seg.urgent);
    }
    if !seg.options.is_empty() {
        let opts: Vec<TcpOpt> = seg.options.iter().map(|o| script_opt(flow, o)).collect();
        s.push(' ');
        s.push_str(&options_text(&opts));
    }
    s
}

/// A segment in live values (for segments of no flow under test).
pub(super) fn live_line(seg: &OutSeg, (local, remote): (IpAddr, IpAddr)) -> String {
    format!(
        "{}:{} > {}:{} {} seq {} ack {} win {} ({} bytes)",
        local,
        seg.local_port,
        remote,
        seg.remote_port,
        seg.flags,
        seg.seq,
        seg.ack,
        seg.window,
        seg.payload.len()
    )
}
