//! Giving freed heap memory back to the system. glibc's allocator keeps what a burst freed (a
//! compile's temporary allocations, a load peak's buffers) in its arenas, where it stays resident
//! though nothing uses it; `malloc_trim` returns the free pages of every arena. The hub calls this
//! after compiling a component and now and then while it runs.

/// Returns free heap pages to the system; false when there was nothing to return (or on a libc
/// without `malloc_trim`).
pub fn return_free_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks the allocator's own free lists, under its locks.
        #[allow(unsafe_code)]
        let released = unsafe { libc::malloc_trim(0) };
        released == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
