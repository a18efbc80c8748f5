//! What a run measured, how it is printed, and the files it is saved to.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// A latency histogram in nanoseconds, 1 ns to 100 s at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// Latency figures in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub p9999: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        let us = |v: u64| v as f64 / 1000.0;
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: us(h.value_at_quantile(0.5)),
            p90: us(h.value_at_quantile(0.9)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            p9999: us(h.value_at_quantile(0.9999)),
            max: us(h.max()),
        }
    }
}

/// One run of the client: what `--json` writes and `plot` reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunResult {
    pub label: String,
    pub stack: String,
    pub workload: String,
    /// "busy" or "blocking".
    pub polling: String,
    pub target: String,
    pub conns: usize,
    pub req_bytes: usize,
    pub resp_bytes: usize,
    pub pipeline: usize,
    /// Open loop: the requests per second asked for (0: closed loop).
    pub rate: f64,
    /// Measured seconds (after the warm-up).
    pub seconds: f64,
    /// Responses received in the measured time.
    pub requests: u64,
    /// Connections completed (crr: connect + request + response + close).
    pub connections: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub requests_per_sec: f64,
    pub connections_per_sec: f64,
    /// Payload bit rate, both directions added (stream: the one direction).
    pub gbit_per_sec: f64,
    pub latency_us: Latency,
    /// CPU time of the client process (user + system) over the measured time.
    pub cpu_user_s: f64,
    pub cpu_sys_s: f64,
    /// (user + system) / requests, microseconds; for stream, per MB.
    pub cpu_us_per_request: f64,
    /// Connections that failed: refused, timed out, closed early, protocol errors.
    pub errors: u64,
    /// Connections reset by the peer (counted in errors too).
    pub resets: u64,
    /// Most connections open at once.
    pub peak_conns: usize,
    /// The latency distribution as (percentile, µs) points, for plots.
    pub percentiles: Vec<(f64, f64)>,
    /// The client's device counters at the end (xtcp's `Device::counters`; empty for the
    /// kernel), by name.
    #[serde(default)]
    pub device: std::collections::BTreeMap<String, u64>,
}

impl RunResult {
    /// The one-line summary.
    pub fn line(&self) -> String {
        let l = &self.latency_us;
        let mut s = format!("{:<36}", self.label);
        match self.workload.as_str() {
            "stream" => {
                let _ = write!(s, " {:>8.2} Gbit/s", self.gbit_per_sec);
            }
            "crr" => {
                let _ = write!(s, " {:>9.0} conn/s", self.connections_per_sec);
            }
            _ => {
                let _ = write!(s, " {:>9.0} req/s", self.requests_per_sec);
            }
        }
        if l.count > 0 {
            let _ = write!(
                s,
                "  lat µs p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} p99.99 {:.1} max {:.1}",
                l.p50, l.p90, l.p99, l.p999, l.p9999, l.max
            );
        }
        let _ = write!(
            s,
            "  cpu {:.2} µs/{}  errors {} resets {}  ({} polling)",
            self.cpu_us_per_request,
            if self.workload == "stream" { "MB" } else { "req" },
            self.errors,
            self.resets,
            self.polling
        );
        s
    }
}

/// The percentile points of a histogram, for the JSON and the plot (the same iteration as the
/// `.hgrm` file: 5 ticks per half-distance).
pub fn percentile_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_quantiles(5).map(|v| (v.percentile(), v.value_iterated_to() as f64 / 1000.0)).collect()
}

/// The HdrHistogram percentile-distribution text (what `HistogramLogProcessor` and wrk2 print),
/// values in microseconds.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{:>12} {:>14} {:>10} {:>14}\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            let q = v.quantile_iterated_to();
            let value = v.value_iterated_to() as f64 / 1000.0;
            if q < 1.0 {
                let _ = writeln!(
                    s,
                    "{value:>12.3} {q:>14.12} {:>10} {:>14.2}",
                    v.count_since_last_iteration(),
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(s, "{value:>12.3} {q:>14.12} {:>10}", v.count_since_last_iteration());
            }
        }
    }
    let mean = h.mean() / 1000.0;
    let sd = h.stdev() / 1000.0;
    let _ = writeln!(s, "#[Mean    = {mean:>12.3}, StdDeviation   = {sd:>12.3}]");
    let _ = writeln!(s, "#[Max     = {:>12.3}, Total count    = {:>12}]", h.max() as f64 / 1000.0, h.len());
    let _ = writeln!(s, "#[Buckets = {:>12}, SubBuckets     = {:>12}]", h.buckets(), h.distinct_values());
    s
}

/// CPU time of this process so far, (user, system) seconds.
pub fn cpu_times() -> (f64, f64) {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            (secs(u.user_time()), secs(u.system_time()))
        }
        Err(_) => (0.0, 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_hgrm() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 1000).unwrap();
        }
        let l = Latency::of(&h);
        assert!((l.p50 - 5000.0).abs() < 10.0, "{l:?}");
        assert!((l.p99 - 9900.0).abs() < 10.0, "{l:?}");
        assert!((l.max - 10_000.0).abs() < 10.0);
        let text = hgrm(&h);
        assert!(text.contains("1/(1-Percentile)"));
        assert!(text.contains("#[Max     ="));
        let last = text.lines().rfind(|l| !l.starts_with('#') && !l.trim().is_empty()).unwrap();
        assert!(last.contains("1.000000000000"), "the distribution ends at 100 %: {last}");
        let pts = percentile_points(&h);
        assert!(pts.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
    }

    #[test]
    fn empty_histograms_print() {
        let h = new_histogram();
        assert_eq!(Latency::of(&h).count, 0);
        assert!(hgrm(&h).contains("Total count    =            0"));
        assert!(percentile_points(&h).is_empty());
    }

    #[test]
    fn cpu_time_moves() {
        let (u0, s0) = cpu_times();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let (u1, s1) = cpu_times();
        assert!(u1 + s1 >= u0 + s0);
    }
}
