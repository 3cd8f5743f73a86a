//! What the kernel knows about a process and its sockets, read from `/proc`.
//!
//! Throughput is reported per server CPU-second because the load generator shares the
//! machine with the server: wall-clock rates move with whoever else is busy, the server's
//! own user+system time does not. Memory per connection comes from the server's resident
//! set (`VmRSS`) plus what the kernel holds for sockets (`/proc/net/sockstat`) and in slab
//! caches (`/proc/meminfo`), sampled before and after.

use std::fs;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(cpu_secs(pid).is_some());
        assert!(rss_kib(pid).unwrap() > 0);
        assert!(threads(pid).unwrap() >= 1);
        assert!(open_fds(pid).unwrap() >= 3);
    }
}
