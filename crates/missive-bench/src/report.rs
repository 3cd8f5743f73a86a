//! Latency recording and the three outputs of every scenario: the one-line JSON summary on
//! stdout, and with `--out DIR` the HdrHistogram percentile files (`.hgrm`, the format
//! HdrHistogram's plotter reads) and a latency-over-time SVG.
//!
//! Each task records into its own `Recorder` (no shared lock on the hot path) and the
//! recorders are merged at the end. Values are microseconds; the summary shows milliseconds.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// The instant every timestamp of a run is measured from.
#[derive(Clone, Copy, Debug)]
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Clock {
        Clock(Instant::now())
    }

    /// Microseconds since the run started.
    pub fn us(&self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }

    pub fn instant_at(&self, us: u64) -> Instant {
        self.0 + std::time::Duration::from_micros(us)
    }
}

/// Latencies of one kind, plus when each was taken (for the over-time plot).
pub struct Recorder {
    pub hist: Histogram<u64>,
    /// (microseconds since start, latency in microseconds).
    samples: Vec<(u64, u64)>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        // 3 significant digits, auto-resizing: any latency from 1 µs to hours.
        Recorder { hist: Histogram::new(3).expect("3 significant digits is valid"), samples: Vec::new() }
    }

    /// Records a latency observed at `at_us` (both in microseconds).
    pub fn record(&mut self, at_us: u64, latency_us: u64) {
        let _ = self.hist.record(latency_us.max(1));
        self.samples.push((at_us, latency_us));
    }

    pub fn merge(&mut self, other: Recorder) {
        let _ = self.hist.add(&other.hist);
        self.samples.extend(other.samples);
    }

    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// `{count, p50_ms, p90_ms, p99_ms, p999_ms, max_ms, mean_ms}`.
    pub fn summary(&self) -> Value {
        let h = &self.hist;
        if h.is_empty() {
            return json!({"count": 0});
        }
        let ms = |us: u64| us as f64 / 1000.0;
        json!({
            "count": h.len(),
            "p50_ms": ms(h.value_at_quantile(0.50)),
            "p90_ms": ms(h.value_at_quantile(0.90)),
            "p99_ms": ms(h.value_at_quantile(0.99)),
            "p999_ms": ms(h.value_at_quantile(0.999)),
            "max_ms": ms(h.max()),
            "mean_ms": h.mean().round() / 1000.0,
        })
    }

    /// HdrHistogram's percentile distribution text, values in milliseconds.
    pub fn hgrm(&self) -> String {
        use std::fmt::Write;
        let h = &self.hist;
        let mut out = String::from("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
        if h.is_empty() {
            return out;
        }
        let mut total = 0u64;
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            let inv = if q < 1.0 { format!("{:14.2}", 1.0 / (1.0 - q)) } else { String::new() };
            let _ = writeln!(out, "{:12.3} {:14.12} {:10} {inv}", v.value_iterated_to() as f64 / 1000.0, q, total,);
        }
        let _ = writeln!(
            out,
            "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]\n#[Max     = {:12.3}, Total count    = {:12}]",
            h.mean() / 1000.0,
            h.stdev() / 1000.0,
            h.max() as f64 / 1000.0,
            h.len()
        );
        let _ = writeln!(out, "#[Buckets = {:12}, SubBuckets     = {:12}]", h.buckets(), h.distinct_values());
        out
    }

    /// Per-interval p50, p99 and max over the run, for plotting.
    fn over_time(&self) -> Vec<Point> {
        if self.samples.is_empty() {
            return Vec::new();
        }
        let mut s = self.samples.clone();
        s.sort_unstable_by_key(|x| x.0);
        let (first, last) = (s[0].0, s[s.len() - 1].0);
        // About 200 points whatever the run length, but no bucket shorter than 10 ms.
        let width = ((last - first) / 200).max(10_000);
        let mut out = Vec::new();
        let mut i = 0;
        while i < s.len() {
            let bucket = (s[i].0 - first) / width;
            let mut lat: Vec<u64> = Vec::new();
            while i < s.len() && (s[i].0 - first) / width == bucket {
                lat.push(s[i].1);
                i += 1;
            }
            lat.sort_unstable();
            let q = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
            let t = (first + bucket * width + width / 2) as f64 / 1e6;
            out.push((t, [q(0.5), q(0.99), lat[lat.len() - 1] as f64 / 1000.0]));
        }
        out
    }
}

/// One plotted interval: (seconds since start, [p50, p99, max] in ms).
type Point = (f64, [f64; 3]);

/// Writes `NAME-LABEL.hgrm` for each recorder and `NAME-latency.svg` plotting them all.
pub fn write_outputs(dir: &Path, name: &str, recorders: &[(&str, &Recorder)], summary: &Value) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (label, r) in recorders {
        std::fs::write(dir.join(format!("{name}-{label}.hgrm")), r.hgrm())?;
    }
    std::fs::write(dir.join(format!("{name}-summary.json")), format!("{summary}\n"))?;
    let series: Vec<(&str, Vec<Point>)> =
        recorders.iter().map(|(l, r)| (*l, r.over_time())).filter(|(_, s)| !s.is_empty()).collect();
    if !series.is_empty() {
        plot(&dir.join(format!("{name}-latency.svg")), name, &series)?;
    }
    Ok(())
}

/// A small SVG (a few kB, so it can be committed): latency (log scale, ms) against time
/// (s), a p50 and a p99 line per recorder.
fn plot(path: &Path, title: &str, series: &[(&str, Vec<Point>)]) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let t_max = series.iter().flat_map(|(_, s)| s.iter().map(|p| p.0)).fold(0.0f64, f64::max).max(0.01);
    let y_max = series.iter().flat_map(|(_, s)| s.iter().map(|p| p.1[1])).fold(0.0f64, f64::max).max(0.01) * 1.5;
    let y_min = series.iter().flat_map(|(_, s)| s.iter().map(|p| p.1[0])).fold(f64::MAX, f64::min).max(0.001) / 1.5;
    let root = SVGBackend::new(path, (720, 360)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{title}: latency over time (p50 thick, p99 thin)"), ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(32)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..t_max * 1.02, (y_min..y_max).log_scale())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("latency (ms)")
        .max_light_lines(0)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (i, (label, s)) in series.iter().enumerate() {
        let color = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(s.iter().map(|p| (p.0, p.1[0])), color.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(format!("{label} p50"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        chart
            .draw_series(LineSeries::new(s.iter().map(|p| (p.0, p.1[1])), color.mix(0.6).stroke_width(1)))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(format!("{label} p99"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.mix(0.6).stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// Prints the one-line JSON summary on stdout (the only thing this program prints there).
pub fn emit(summary: &Value) {
    println!("{summary}");
}

/// `x / y`, or null when `y` is unknown or zero.
pub fn ratio(x: f64, y: Option<f64>) -> Value {
    match y {
        Some(y) if y > 0.0 => json!(crate::target::round3(x / y)),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_hgrm() {
        let mut r = Recorder::new();
        for i in 1..=1000u64 {
            r.record(i * 1000, i);
        }
        let s = r.summary();
        assert_eq!(s["count"], 1000);
        assert!((s["p50_ms"].as_f64().unwrap() - 0.5).abs() < 0.01);
        let text = r.hgrm();
        assert!(text.contains("Total count"));
        assert!(!r.over_time().is_empty());
    }
}
