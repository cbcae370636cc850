//! The CPU time of the calling thread, which is what a plugin call costs: a plugin runs on the
//! thread that calls it, so the difference across a call is the plugin's work (and the host's work
//! on its behalf), without the time the thread waited for a core on a busy machine.

use std::time::Duration;

/// CPU time the calling thread has used since it started.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call, and
    // CLOCK_THREAD_CPUTIME_ID is a clock every Linux and BSD kernel this host runs on provides.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_work_and_not_sleep() {
        let start = thread_cpu_time();
        std::thread::sleep(Duration::from_millis(50));
        let slept = thread_cpu_time() - start;
        let start = thread_cpu_time();
        let mut x = 0u64;
        let began = std::time::Instant::now();
        while began.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let worked = thread_cpu_time() - start;
        assert!(slept < Duration::from_millis(20), "sleeping cost {slept:?}");
        assert!(
            worked > Duration::from_millis(20),
            "working cost {worked:?}"
        );
    }
}
