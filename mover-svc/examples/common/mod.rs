//! What the timing examples share.

/// CPU time this process has used, all threads.
#[cfg(target_os = "linux")]
pub fn cpu_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

#[cfg(not(target_os = "linux"))]
pub fn cpu_seconds() -> f64 {
    f64::NAN
}

/// CPU time of this process's threads named `name`, summed.
#[cfg(target_os = "linux")]
#[allow(dead_code)] // used by some of the examples only
pub fn thread_cpu_seconds(name: &str) -> f64 {
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .filter(|stat| stat.contains(&format!("({name})")))
        .map(|stat| {
            // Fields after the name: utime and stime are the 12th and 13th.
            let after_name = stat.rsplit(')').next().unwrap_or("");
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            let field = |i: usize| {
                fields
                    .get(i)
                    .and_then(|f| f.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            (field(11) + field(12)) / ticks
        })
        .sum()
}

#[cfg(not(target_os = "linux"))]
#[allow(dead_code)]
pub fn thread_cpu_seconds(_name: &str) -> f64 {
    f64::NAN
}
