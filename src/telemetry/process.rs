//! The standard `process_*` metrics (CPU time, memory, file descriptors, threads, start time), read from
//! `/proc/self` on Linux. The Prometheus exporter crate does not collect them, and the dashboards and alerts
//! need them per replica; elsewhere (macOS development) nothing is reported.

/// One reading of the process's resources.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessSample {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    pub virtual_bytes: f64,
    pub threads: f64,
    pub open_fds: Option<f64>,
    pub max_fds: Option<f64>,
    pub start_time_seconds: Option<f64>,
}

/// Linux reports CPU times in clock ticks of `USER_HZ`, which the kernel fixes at 100 for user space on every
/// architecture (`sysconf(_SC_CLK_TCK)` returns it), so no libc call is needed.
const TICKS_PER_SECOND: f64 = 100.0;

/// Reads `/proc/self`; `None` where there is no procfs.
pub fn sample() -> Option<ProcessSample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let mut sample = parse(&stat, &status)?;
    sample.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count() as f64);
    sample.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| max_open_files(&limits));
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| boot_time(&s));
    sample.start_time_seconds = boot
        .zip(start_ticks(&stat))
        .map(|(boot, ticks)| boot + ticks / TICKS_PER_SECOND);
    Some(sample)
}

/// Publishes a sample as gauges. `process_cpu_seconds_total` is a gauge holding the kernel's running total
/// (the `metrics` counters take whole numbers only); `rate()` treats it exactly like a counter.
pub fn record() {
    let Some(sample) = sample() else { return };
    metrics::gauge!("process_cpu_seconds_total").set(sample.cpu_seconds);
    metrics::gauge!("process_resident_memory_bytes").set(sample.resident_bytes);
    metrics::gauge!("process_virtual_memory_bytes").set(sample.virtual_bytes);
    metrics::gauge!("process_threads").set(sample.threads);
    if let Some(open) = sample.open_fds {
        metrics::gauge!("process_open_fds").set(open);
    }
    if let Some(max) = sample.max_fds {
        metrics::gauge!("process_max_fds").set(max);
    }
    if let Some(start) = sample.start_time_seconds {
        metrics::gauge!("process_start_time_seconds").set(start);
    }
}

/// The fields after the command name, which is in parentheses and may itself contain spaces and `)`.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let after = &stat[stat.rfind(')')? + 1..];
    Some(after.split_whitespace().collect())
}

/// CPU time from `/proc/self/stat` (utime + stime, fields 14 and 15), memory and threads from
/// `/proc/self/status` (kB values).
fn parse(stat: &str, status: &str) -> Option<ProcessSample> {
    // Field 3 (state) is index 0 here.
    let fields = stat_fields(stat)?;
    let ticks = |field: usize| fields.get(field - 3)?.parse::<f64>().ok();
    let cpu_seconds = (ticks(14)? + ticks(15)?) / TICKS_PER_SECOND;
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    Some(ProcessSample {
        cpu_seconds,
        resident_bytes: kb("VmRSS:")? * 1024.0,
        virtual_bytes: kb("VmSize:")? * 1024.0,
        threads: kb("Threads:")?,
        ..ProcessSample::default()
    })
}

fn start_ticks(stat: &str) -> Option<f64> {
    stat_fields(stat)?.get(22 - 3)?.parse().ok()
}

fn boot_time(proc_stat: &str) -> Option<f64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

fn max_open_files(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    // "Max open files            1024                 1048576              files": soft limit first.
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (wosool (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 12 0 \
                        98765 123456789 2048 18446744073709551615";
    const STATUS: &str = "Name:\twosool\nVmSize:\t  120560 kB\nVmRSS:\t   20480 kB\nThreads:\t12\n";

    #[test]
    fn parses_cpu_memory_and_threads_even_with_parentheses_in_the_name() {
        let sample = parse(STAT, STATUS).unwrap();
        assert_eq!(sample.cpu_seconds, 3.25);
        assert_eq!(sample.resident_bytes, 20480.0 * 1024.0);
        assert_eq!(sample.virtual_bytes, 120560.0 * 1024.0);
        assert_eq!(sample.threads, 12.0);
        assert_eq!(start_ticks(STAT), Some(98765.0));
    }

    #[test]
    fn reads_the_soft_open_files_limit_and_boot_time() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 1048576              files\n";
        assert_eq!(max_open_files(limits), Some(1024.0));
        assert_eq!(
            boot_time("cpu 1 2 3\nbtime 1700000000\n"),
            Some(1_700_000_000.0)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn samples_this_process() {
        let sample = sample().expect("procfs on Linux");
        assert!(
            sample.resident_bytes > 0.0 && sample.threads >= 1.0,
            "{sample:?}"
        );
        assert!(sample.open_fds.unwrap() >= 3.0);
        let start = sample.start_time_seconds.unwrap();
        assert!(start > 1_600_000_000.0, "{start}");
    }
}
