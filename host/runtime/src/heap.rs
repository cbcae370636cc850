//! Giving freed heap memory back to the system. Allocators keep what a burst freed (a compile's
//! temporaries, a load peak's buffers) for reuse, resident though nothing uses it: the `hub`
//! binary's global allocator, mimalloc, keeps it in its arenas and with the threads that freed it
//! (`mi_collect` returns what is free, of exited threads too), and glibc's malloc, which C code
//! such as SQLite uses, in its arenas (`malloc_trim`). The hub calls this after compiling a
//! component, once the compile's threads have exited.

/// Returns free heap pages to the system: mimalloc's and glibc's. Harmless in a process whose
/// global allocator is not mimalloc (its heaps are then empty).
pub fn return_free_heap() {
    // SAFETY: mi_collect takes no pointers and walks mimalloc's own structures under its locks;
    // malloc_trim only walks glibc's own free lists, under its locks.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_collect(true);
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        libc::malloc_trim(0);
    }
}
