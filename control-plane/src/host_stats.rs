//! Memory and CPU of the machine the control plane runs on, read from
//! /proc (Linux). Elsewhere the figures are zero.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HostStats {
    /// Bytes.
    pub mem_total: u64,
    /// Bytes in use: total minus what is available to new programs.
    pub mem_used: u64,
    pub cpu_cores: u64,
    /// Percent busy across all cores, one decimal.
    pub cpu_usage: f64,
}

/// Cumulative jiffies of the "cpu" line of /proc/stat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct CpuTimes {
    busy: u64,
    total: u64,
}

/// The previous CPU sample, so usage covers the time between two calls (at
/// least a second) rather than all the time since boot.
static CPU_SAMPLE: Mutex<Option<(Instant, CpuTimes, f64)>> = Mutex::new(None);

pub fn read() -> HostStats {
    let (mem_total, mem_used) = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| parse_meminfo(&text))
        .unwrap_or_default();
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu_cores = match parse_cores(&stat) {
        0 => std::thread::available_parallelism().map_or(0, |n| n.get() as u64),
        n => n,
    };
    let cpu_usage = parse_cpu_times(&stat).map_or(0.0, cpu_usage);
    HostStats {
        mem_total,
        mem_used,
        cpu_cores,
        cpu_usage,
    }
}

fn cpu_usage(now: CpuTimes) -> f64 {
    let mut sample = CPU_SAMPLE.lock().expect("cpu sample poisoned");
    let at = Instant::now();
    match *sample {
        // Too soon for a meaningful figure: repeat the last one.
        Some((then, _, last)) if at.duration_since(then) < Duration::from_secs(1) => last,
        previous => {
            let base = previous.map(|(_, times, _)| times).unwrap_or_default();
            let usage = busy_percent(base, now);
            *sample = Some((at, now, usage));
            usage
        }
    }
}

fn busy_percent(before: CpuTimes, after: CpuTimes) -> f64 {
    let total = after.total.saturating_sub(before.total);
    if total == 0 {
        return 0.0;
    }
    let busy = after.busy.saturating_sub(before.busy);
    (busy as f64 * 1000.0 / total as f64).round() / 10.0
}

/// (MemTotal, MemTotal - MemAvailable) in bytes.
fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    let total = field("MemTotal")?;
    let available = field("MemAvailable").or_else(|| field("MemFree"))?;
    Some((total, total.saturating_sub(available)))
}

fn parse_cores(stat: &str) -> u64 {
    stat.lines()
        .filter_map(|line| line.split_whitespace().next()?.strip_prefix("cpu"))
        .filter(|n| n.parse::<u32>().is_ok())
        .count() as u64
}

/// user nice system idle iowait irq softirq steal (guest time is already
/// part of user and nice).
fn parse_cpu_times(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    if values.len() < 4 {
        return None;
    }
    let total: u64 = values.iter().sum();
    let idle = values[3] + values.get(4).copied().unwrap_or(0);
    Some(CpuTimes {
        busy: total - idle,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 5 50 800 40 3 2 0 7 0\n\
                        cpu0 50 2 25 400 20 1 1 0 0 0\n\
                        cpu1 50 3 25 400 20 2 1 0 0 0\n\
                        intr 1 2 3\nctxt 9\n";

    #[test]
    fn reads_meminfo() {
        let text = "MemTotal:       16000 kB\nMemFree:         1000 kB\n\
                    MemAvailable:    6000 kB\nBuffers:          10 kB\n";
        assert_eq!(parse_meminfo(text), Some((16000 * 1024, 10000 * 1024)));
        let old_kernel = "MemTotal: 100 kB\nMemFree: 40 kB\n";
        assert_eq!(parse_meminfo(old_kernel), Some((102_400, 61_440)));
        assert_eq!(parse_meminfo("garbage"), None);
    }

    #[test]
    fn reads_cores_and_cpu_times() {
        assert_eq!(parse_cores(STAT), 2);
        let times = parse_cpu_times(STAT).unwrap();
        assert_eq!(times.total, 1000);
        assert_eq!(times.busy, 1000 - 800 - 40);
        let later = CpuTimes {
            busy: times.busy + 30,
            total: times.total + 120,
        };
        assert_eq!(busy_percent(times, later), 25.0);
        assert_eq!(busy_percent(later, later), 0.0);
    }

    #[test]
    fn reads_this_machine() {
        let stats = read();
        if cfg!(target_os = "linux") {
            assert!(stats.mem_total > 0 && stats.mem_used <= stats.mem_total);
            assert!(stats.cpu_cores > 0);
            assert!((0.0..=100.0).contains(&stats.cpu_usage));
        }
    }
}
