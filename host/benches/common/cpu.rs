//! CPU time of the bench process itself, for figures that say where a run's time went.

/// Seconds of CPU this process has used (user + system), from /proc/self/stat: utime and
/// stime, fields 14 and 15 of the line (11 and 12 after the command name, which may hold
/// spaces and ends at the last ')'), in clock ticks of 1/100 s on Linux.
pub fn own_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}
