import CPrefetch

/// Cache-line prefetch hints for loops that touch many cold objects: the head's append visits
/// one series object, its open chunk and possibly a sample array per series of a batch, each
/// likely out of cache (the sample arrays were written by the decoding thread, on another core).
/// Requesting them some items ahead lets the misses overlap instead of stalling the loop one at
/// a time. Hints only: they never fault and change no value.
enum Prefetch {
    /// `lines` cache lines from `p`, to be written: a reference count change is a write, and
    /// a line last written by another core (a decoding thread's fresh arrays) must first be
    /// taken away from it, which a read prefetch does not do.
    @inline(__always)
    static func raw(_ p: UnsafeMutableRawPointer, lines: Int = 1) {
        for i in 0..<lines { starling_prefetch_write(p + 64 * i) }
    }

}
