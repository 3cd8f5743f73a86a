//! The process's own resource use, read from `/proc/self` at scrape time (Linux; elsewhere
//! the values are absent and the gauges are not written).

use std::fs;

/// What one scrape reads.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessStats {
    pub resident_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub threads: Option<u64>,
}

impl ProcessStats {
    pub fn read() -> ProcessStats {
        let status = fs::read_to_string("/proc/self/status").ok();
        let field = |key: &str| -> Option<u64> {
            status.as_deref()?.lines().find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
        };
        ProcessStats {
            resident_bytes: field("VmRSS:").map(|kib| kib * 1024),
            threads: field("Threads:"),
            open_fds: fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64),
            max_fds: max_open_files(),
        }
    }
}

/// The soft `Max open files` limit.
fn max_open_files() -> Option<u64> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = ProcessStats::read();
        if cfg!(target_os = "linux") {
            assert!(s.resident_bytes.unwrap() > 0);
            assert!(s.open_fds.unwrap() >= 3);
            assert!(s.max_fds.unwrap() >= s.open_fds.unwrap());
            assert!(s.threads.unwrap() >= 1);
        }
    }
}
