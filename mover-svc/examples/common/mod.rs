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
