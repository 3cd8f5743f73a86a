//! What the kernel knows about a process and its sockets, read from `/proc`.
//!
//! Throughput is reported per server CPU-second because the load generator shares the
//! machine with the server: wall-clock rates move with whoever else is busy, the server's
//! own user+system time does not. Memory per connection comes from the server's resident
//! set (`VmRSS`) plus what the kernel holds for sockets (`/proc/net/sockstat`) and in slab
//! caches (`/proc/meminfo`), sampled before and after. [`Sampler`] reads a process's
//! memory, threads and fds periodically from its own thread while a run goes on, for the
//! scenarios that ask whether those stay bounded (the soak, overload).

use std::fs;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::target::round3;

/// `USER_HZ`, the unit of `utime`/`stime` in `/proc/PID/stat`. Linux fixes it at 100 for
/// user space on every architecture (the kernel's own `HZ` may differ, the ABI does not),
/// which spares us an `unsafe` `sysconf` call.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// User + system CPU seconds consumed so far by process `pid` (all its threads).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / CLOCK_TICKS_PER_SEC)
}

/// CPU seconds of this process (the load generator).
pub fn own_cpu_secs() -> f64 {
    cpu_secs(std::process::id()).unwrap_or(0.0)
}

/// A `key:  N kB` line of `/proc/PID/status`, in KiB.
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix(key)?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// Resident set size of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// Peak resident set size of `pid` over its lifetime (`VmHWM`), in KiB.
pub fn hwm_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// Threads of `pid`.
pub fn threads(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok())
}

/// Open file descriptors of `pid`.
pub fn open_fds(pid: u32) -> Option<u64> {
    Some(fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// Pages the kernel has allocated for TCP socket buffers, machine-wide (`TCP: … mem N`).
/// Both ends of a loopback connection count, so a per-connection figure derived from it
/// covers the client's socket too: an upper bound for the server's share.
pub fn tcp_mem_pages() -> Option<u64> {
    let s = fs::read_to_string("/proc/net/sockstat").ok()?;
    let tcp = s.lines().find(|l| l.starts_with("TCP:"))?;
    let mut it = tcp.split_whitespace();
    while let Some(word) = it.next() {
        if word == "mem" {
            return it.next()?.parse().ok();
        }
    }
    None
}

/// Kernel slab memory, machine-wide, in KiB (`Slab:` of `/proc/meminfo`): socket, inode,
/// epoll and file structures live here, not in `sockstat`'s buffer count.
pub fn slab_kib() -> Option<u64> {
    let s = fs::read_to_string("/proc/meminfo").ok()?;
    s.lines().find_map(|l| l.strip_prefix("Slab:")?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// The page size used by `sockstat`'s `mem` column.
pub const PAGE_BYTES: u64 = 4096;

/// Raises this process's open-file limit to its hard limit (the load generator holds one
/// socket per simulated device). Returns the soft limit now in force.
pub fn raise_nofile_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let current = getrlimit(Resource::Nofile);
    if current.maximum != current.current {
        let _ = setrlimit(Resource::Nofile, Rlimit { current: current.maximum, maximum: current.maximum });
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// One reading of a process.
#[derive(Clone, Copy, Debug)]
pub struct ProcSample {
    /// Seconds since the sampler started.
    pub t_s: f64,
    pub rss_kib: Option<u64>,
    pub hwm_kib: Option<u64>,
    pub fds: Option<u64>,
    pub threads: Option<u64>,
}

impl ProcSample {
    pub fn read(pid: u32, t_s: f64) -> ProcSample {
        ProcSample { t_s, rss_kib: rss_kib(pid), hwm_kib: hwm_kib(pid), fds: open_fds(pid), threads: threads(pid) }
    }

    /// `[t_s, rss_kib, fds, threads, hwm_kib]`, compact enough to list every sample.
    pub fn json(&self) -> Value {
        json!([round3(self.t_s), self.rss_kib, self.fds, self.threads, self.hwm_kib])
    }
}

/// Samples a process every `every` on an OS thread of its own, so a busy runtime cannot
/// delay (or skip) the readings a run is judged by.
pub struct Sampler {
    stop: mpsc::Sender<()>,
    handle: JoinHandle<Vec<ProcSample>>,
}

impl Sampler {
    /// Starts sampling `pid` now (the first sample is taken at once).
    pub fn start(pid: u32, every: Duration) -> Sampler {
        let (stop, stopped) = mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut out = Vec::new();
            for k in 1u32.. {
                out.push(ProcSample::read(pid, t0.elapsed().as_secs_f64()));
                let next = t0 + every.max(Duration::from_millis(10)) * k;
                match stopped.recv_timeout(next.saturating_duration_since(Instant::now())) {
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    _ => break,
                }
            }
            out.push(ProcSample::read(pid, t0.elapsed().as_secs_f64()));
            out
        });
        Sampler { stop, handle }
    }

    /// Stops (after one last sample) and returns every sample in order.
    pub fn finish(self) -> Vec<ProcSample> {
        let _ = self.stop.send(());
        self.handle.join().unwrap_or_default()
    }
}

/// Relative change of `f` between the first and the last sample (`(last − first) / first`).
pub fn drift(samples: &[ProcSample], f: fn(&ProcSample) -> Option<u64>) -> Value {
    match (samples.first().and_then(f), samples.last().and_then(f)) {
        (Some(a), Some(b)) if a > 0 => json!(round3((b as f64 - a as f64) / a as f64)),
        _ => Value::Null,
    }
}

/// First, largest and last value of `f` over the samples.
pub fn start_peak_end(samples: &[ProcSample], f: fn(&ProcSample) -> Option<u64>) -> Value {
    json!({
        "start": samples.first().and_then(f),
        "peak": samples.iter().filter_map(f).max(),
        "end": samples.last().and_then(f),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(cpu_secs(pid).is_some());
        assert!(rss_kib(pid).unwrap() > 0);
        assert!(hwm_kib(pid).unwrap() >= rss_kib(pid).unwrap() / 2);
        assert!(threads(pid).unwrap() >= 1);
        assert!(open_fds(pid).unwrap() >= 3);
    }

    #[test]
    fn sampler_samples_until_stopped() {
        let sampler = Sampler::start(std::process::id(), Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(70));
        let samples = sampler.finish();
        assert!(samples.len() >= 3, "{samples:?}");
        assert!(samples.windows(2).all(|w| w[0].t_s <= w[1].t_s));
        assert!(start_peak_end(&samples, |s| s.rss_kib)["peak"].as_u64().unwrap() > 0);
    }
}
