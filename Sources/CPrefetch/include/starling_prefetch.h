#ifndef STARLING_PREFETCH_H
#define STARLING_PREFETCH_H

/// Asks the CPU to start loading the cache line at `p` for reading. A hint: it never faults,
/// whatever `p` is, and costs one instruction. Swift has no prefetch of its own.
static inline __attribute__((always_inline)) void starling_prefetch(const void *_Nullable p) {
    __builtin_prefetch(p, 0, 3);
}

/// The same, for a line about to be written: fetched in exclusive state, so a line another core
/// wrote last is taken from it now rather than at the write. PREFETCHW is written out because
/// the compiler emits it for `__builtin_prefetch(p, 1)` only when told the CPU has it; x86 CPUs
/// without it (before Intel Broadwell) execute it as a no-op.
static inline __attribute__((always_inline)) void starling_prefetch_write(const void *_Nullable p) {
#if defined(__x86_64__)
    __asm__ volatile("prefetchw (%0)" : : "r"(p));
#else
    __builtin_prefetch(p, 1, 3);
#endif
}

#endif
