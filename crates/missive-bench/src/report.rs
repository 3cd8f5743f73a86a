//! Latency recording and the three outputs of every scenario: the one-line JSON summary on
//! stdout, and with `--out DIR` the HdrHistogram percentile files (`.hgrm`, the format
//! HdrHistogram's plotter reads) and a latency-over-time SVG.
//!
//! [`plot_values`] draws what is not a latency (memory over a run) the same way.
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

/// Latencies of one kind, each with when it was taken (for the over-time plot).
///
/// Only the samples are kept while recording; the histogram is built when a summary is
/// asked for. An auto-resizing HdrHistogram per recorder grows to about 100 KB once it has
/// seen a one-second latency, and an overload run has thousands of senders with a few
/// recorders each: resizing them cost the generator more CPU than sending.
#[derive(Default)]
pub struct Recorder {
    /// (microseconds since start, latency in microseconds).
    samples: Vec<(u64, u64)>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// Records a latency observed at `at_us` (both in microseconds).
    pub fn record(&mut self, at_us: u64, latency_us: u64) {
        self.samples.push((at_us, latency_us));
    }

    pub fn merge(&mut self, other: Recorder) {
        self.samples.extend(other.samples);
    }

    pub fn len(&self) -> u64 {
        self.samples.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The samples as a histogram: 3 significant digits, any latency from 1 µs to hours.
    pub fn hist(&self) -> Histogram<u64> {
        let mut h = Histogram::new(3).expect("3 significant digits is valid");
        for &(_, lat) in &self.samples {
            let _ = h.record(lat.max(1));
        }
        h
    }

    /// `{count, p50_ms, p90_ms, p99_ms, p999_ms, max_ms, mean_ms}`.
    pub fn summary(&self) -> Value {
        let h = &self.hist();
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
        let h = &self.hist();
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

    /// Per-`width_us` interval from `from_us`: `[seconds from from_us, count, p50 ms, p99 ms,
    /// max ms]` — whether latency settled or kept growing, in a form short enough for the
    /// JSON summary.
    pub fn per_interval(&self, from_us: u64, width_us: u64) -> Vec<Value> {
        let mut buckets: std::collections::BTreeMap<u64, Vec<u64>> = std::collections::BTreeMap::new();
        for &(at, lat) in &self.samples {
            buckets.entry(at.saturating_sub(from_us) / width_us.max(1)).or_default().push(lat);
        }
        buckets
            .into_iter()
            .map(|(k, mut lat)| {
                lat.sort_unstable();
                let q = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
                json!([crate::target::round3((k * width_us) as f64 / 1e6), lat.len(), q(0.5), q(0.99), q(1.0)])
            })
            .collect()
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

/// A small SVG of plain values over time on a linear scale (memory, fds): one line per
/// series of (seconds, value).
pub fn plot_values(path: &Path, title: &str, y_desc: &str, series: &[(&str, Vec<(f64, f64)>)]) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let points = || series.iter().flat_map(|(_, s)| s.iter());
    let t_max = points().map(|p| p.0).fold(0.0f64, f64::max).max(0.01);
    let y_max = points().map(|p| p.1).fold(0.0f64, f64::max).max(0.01) * 1.1;
    let root = SVGBackend::new(path, (720, 360)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(32)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..t_max * 1.02, 0f64..y_max)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc(y_desc)
        .max_light_lines(0)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (i, (label, s)) in series.iter().enumerate() {
        let color = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(s.iter().copied(), color.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// `NAME-memory.svg`: a process's RSS and peak RSS (`VmHWM`) over a run, in MiB.
pub fn write_memory_plot(dir: &Path, name: &str, samples: &[crate::procfs::ProcSample]) -> anyhow::Result<()> {
    use crate::procfs::ProcSample;
    if samples.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mib = |f: fn(&ProcSample) -> Option<u64>| -> Vec<(f64, f64)> {
        samples.iter().filter_map(|s| f(s).map(|v| (s.t_s, v as f64 / 1024.0))).collect()
    };
    plot_values(
        &dir.join(format!("{name}-memory.svg")),
        &format!("{name}: server memory"),
        "MiB",
        &[("RSS", mib(|s| s.rss_kib)), ("peak RSS (VmHWM)", mib(|s| s.hwm_kib))],
    )
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
        let per = r.per_interval(0, 500_000);
        assert_eq!(per.len(), 3, "{per:?}");
        assert_eq!(per[0][1], 499);
        assert!(!r.over_time().is_empty());
    }
}
