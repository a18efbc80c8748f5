//! The side-by-side table of `scripts/bench`: one row per workload, one column per setup
//! (the runs' labels), a Markdown table so it can go into the README as printed, and ratio
//! columns of each xtcp setup against a baseline column.

use crate::results::RunResult;
use std::fmt::Write as _;

fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// The headline figure of a run and whether more is better.
fn headline(r: &RunResult) -> (f64, String) {
    match r.workload.as_str() {
        "stream" => (r.gbit_per_sec, format!("{:.2} Gbit/s", r.gbit_per_sec)),
        "crr" => (r.connections_per_sec, format!("{} conn/s", si(r.connections_per_sec))),
        _ => (r.requests_per_sec, format!("{} req/s", si(r.requests_per_sec))),
    }
}

/// A run that moved nothing (no request answered, no connection made, no byte written) failed
/// somewhere: its figure means nothing and divides nothing.
fn moved_nothing(r: &RunResult) -> bool {
    r.requests == 0 && r.connections == 0 && r.bytes_sent == 0
}

fn cell(r: &RunResult) -> String {
    if moved_nothing(r) {
        return "**no traffic** (see its log)".into();
    }
    let (_, h) = headline(r);
    let mut s = h;
    if r.latency_us.count > 0 {
        let _ = write!(s, "<br>p50 {:.1} / p99 {:.1} µs", r.latency_us.p50, r.latency_us.p99);
    }
    if r.errors > 0 {
        let _ = write!(s, "<br>**{} errors**", r.errors);
    }
    s
}

/// Rows: each run's `workload` plus its size/conns description; columns: labels in order of
/// first appearance. `baseline`: the label the ratio columns divide by; ratio columns are
/// made for every label in `ratio_of`.
pub fn table(runs: &[RunResult], baseline: Option<&str>, ratio_of: &[String]) -> String {
    let mut cols: Vec<&str> = Vec::new();
    let mut rows: Vec<String> = Vec::new();
    let row_of = |r: &RunResult| match r.workload.as_str() {
        "stream" => format!("stream, {} conn, {} B writes", r.conns, r.req_bytes),
        "crr" => format!("crr, {} at once, {} B", r.conns, r.req_bytes),
        w => format!("{w}, {} conn, {} B", r.conns, r.req_bytes),
    };
    for r in runs {
        if !cols.contains(&r.label.as_str()) {
            cols.push(&r.label);
        }
        let row = row_of(r);
        if !rows.contains(&row) {
            rows.push(row);
        }
    }
    let find = |row: &str, col: &str| runs.iter().find(|r| r.label == col && row_of(r) == row);
    let ratios: Vec<&String> = match baseline {
        Some(b) => ratio_of.iter().filter(|l| cols.contains(&l.as_str()) && l.as_str() != b).collect(),
        None => Vec::new(),
    };
    let mut s = String::new();
    let _ = write!(s, "| workload |");
    for c in &cols {
        let _ = write!(s, " {c} |");
    }
    for l in &ratios {
        let _ = write!(s, " {l} ÷ {} |", baseline.unwrap_or(""));
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "|{}", "---|".repeat(1 + cols.len() + ratios.len()));
    for row in &rows {
        let _ = write!(s, "| {row} |");
        for c in &cols {
            let _ = write!(s, " {} |", find(row, c).map(cell).unwrap_or_else(|| "—".into()));
        }
        for l in &ratios {
            let r = match (find(row, l), baseline.and_then(|b| find(row, b))) {
                (Some(x), Some(b)) if !moved_nothing(x) && !moved_nothing(b) => {
                    let (xv, _) = headline(x);
                    let (bv, _) = headline(b);
                    let mut t = if bv > 0.0 { format!("×{:.2} throughput", xv / bv) } else { "—".into() };
                    if x.latency_us.count > 0 && b.latency_us.p50 > 0.0 {
                        let _ = write!(t, "<br>×{:.2} p50", x.latency_us.p50 / b.latency_us.p50);
                    }
                    t
                }
                _ => "—".into(),
            };
            let _ = write!(s, " {r} |");
        }
        let _ = writeln!(s);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(label: &str, workload: &str, rps: f64, p50: f64) -> RunResult {
        let mut r = RunResult {
            label: label.into(),
            workload: workload.into(),
            conns: 1,
            req_bytes: 64,
            requests_per_sec: rps,
            connections_per_sec: rps,
            requests: 1000,
            ..Default::default()
        };
        r.latency_us.count = 10;
        r.latency_us.p50 = p50;
        r
    }

    #[test]
    fn side_by_side_with_ratios() {
        let runs = [
            run("kernel", "rr", 100_000.0, 8.0),
            run("xtcp", "rr", 200_000.0, 4.0),
            run("kernel", "crr", 5000.0, 100.0),
        ];
        let t = table(&runs, Some("kernel"), &["xtcp".into()]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(lines[0].contains("| kernel | xtcp | xtcp ÷ kernel |"), "{t}");
        assert!(
            lines[2].contains("100.0k req/s")
                && lines[2].contains("×2.00 throughput")
                && lines[2].contains("×0.50 p50"),
            "{t}"
        );
        assert!(lines[3].contains("5.0k conn/s") && lines[3].contains("—"), "{t}");
    }

    /// A baseline that moved nothing (a stream whose writes never went) shows as such, with no
    /// ratio against it (the demo once printed ×1,364,903,313 over a 0.00 Gbit/s baseline).
    #[test]
    fn a_run_that_moved_nothing_divides_nothing() {
        let mut dead = run("kernel", "stream", 0.0, 0.0);
        dead.requests = 0;
        dead.latency_us.count = 0;
        dead.gbit_per_sec = 1.8e-9;
        let mut live = run("xtcp", "stream", 0.0, 0.0);
        live.latency_us.count = 0;
        live.gbit_per_sec = 2.5;
        live.bytes_sent = 1 << 30;
        let t = table(&[dead, live], Some("kernel"), &["xtcp".into()]);
        let row = t.lines().nth(2).unwrap();
        assert!(row.contains("**no traffic**") && row.contains("2.50 Gbit/s") && row.ends_with("| — |"), "{t}");
    }
}
