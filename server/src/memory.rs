//! Keeping the daemon's resident memory small: glibc gives each thread that allocates its own
//! arena and keeps freed memory, so a burst of blocking work (a big import) would stay resident.

/// Caps glibc's malloc arenas; call before any thread starts.
pub fn limit_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; it is called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns freed heap memory to the kernel.
pub fn trim() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory at the top of, and inside, glibc's heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}
