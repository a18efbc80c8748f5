//! The latency-percentile plot: several runs' distributions in one SVG, the way HdrHistogram's
//! plotter draws them. X: percentile on a log scale of 1/(1-p) (50 %, 90 %, 99 %, 99.9 % …
//! equally spaced); Y: latency in microseconds, log scale.

use crate::results::RunResult;
use plotters::prelude::*;
use std::path::Path;

/// x position of a percentile (0..100): log10(1/(1-p)).
fn x_of(percentile: f64) -> f64 {
    let q = (percentile / 100.0).min(0.999_999);
    -(1.0 - q).log10()
}

fn label_of(x: &f64) -> String {
    // x = 0 → 0 %, 1 → 90 %, 2 → 99 %, 3 → 99.9 % …
    let p = 100.0 * (1.0 - 10f64.powf(-*x));
    let digits = (x.round() as i32 - 2).max(0) as usize;
    format!("{p:.digits$}%")
}

/// Draw the runs' latency distributions into `out` (SVG). Runs without latencies are skipped.
pub fn plot(out: &Path, title: &str, runs: &[RunResult]) -> Result<(), String> {
    let runs: Vec<&RunResult> = runs.iter().filter(|r| !r.percentiles.is_empty()).collect();
    if runs.is_empty() {
        return Err("no run with latencies to plot".into());
    }
    let max_x =
        runs.iter().flat_map(|r| r.percentiles.iter().map(|p| x_of(p.0))).fold(1.0f64, f64::max).ceil().min(6.0);
    let (mut lo, mut hi) = (f64::MAX, 0.0f64);
    for r in &runs {
        for p in &r.percentiles {
            lo = lo.min(p.1.max(0.1));
            hi = hi.max(p.1);
        }
    }
    let (lo, hi) = (lo / 1.5, hi * 1.5);
    let root = SVGBackend::new(out, (1000, 640)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<std::io::Error>| format!("{}: {e}", out.display());
    root.fill(&WHITE).map_err(e)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_x, (lo..hi).log_scale())
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_labels(max_x as usize + 1)
        .x_label_formatter(&label_of)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .draw()
        .map_err(e)?;
    for (i, r) in runs.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = r.percentiles.iter().map(|p| (x_of(p.0).min(max_x), p.1.max(lo))).collect();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(e)?
            .label(format!("{} (p50 {:.1} µs, p99 {:.1} µs)", r.label, r.latency_us.p50, r.latency_us.p99))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_axis() {
        assert_eq!(x_of(0.0), 0.0);
        assert!((x_of(90.0) - 1.0).abs() < 1e-9);
        assert!((x_of(99.9) - 3.0).abs() < 1e-9);
        assert!(x_of(100.0) <= 6.0 + 1e-9);
        assert_eq!(label_of(&1.0), "90%");
        assert_eq!(label_of(&3.0), "99.9%");
    }

    #[test]
    fn plots_an_svg() {
        let mut a = RunResult { label: "a".into(), ..Default::default() };
        a.percentiles = vec![(0.0, 5.0), (50.0, 10.0), (99.0, 20.0), (100.0, 40.0)];
        let mut b = a.clone();
        b.label = "b".into();
        let empty = RunResult::default();
        let path = std::env::temp_dir().join(format!("xtcp-bench-plot-{}.svg", std::process::id()));
        plot(&path, "test", &[a, b, empty]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("polyline") || svg.contains("path"));
        assert!(plot(&path, "none", &[RunResult::default()]).is_err());
    }
}
