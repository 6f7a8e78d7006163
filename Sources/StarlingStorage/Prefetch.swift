import CPrefetch

/// Cache-line prefetch hints for loops that touch many cold objects: the head's append visits
/// one series object, one label array and one sample array per series of a batch, each likely
/// out of cache (and the sample arrays were written by the decoding thread, on another core).
/// Issuing the loads for a whole batch first lets the misses overlap instead of stalling the
/// loop one at a time. Hints only: they never fault and change no value.
enum Prefetch {
    /// `lines` cache lines from `p`, to be written: a reference count change is a write, and
    /// a line last written by another core (a decoding thread's fresh arrays) must first be
    /// taken away from it, which a read prefetch does not do.
    @inline(__always)
    static func raw(_ p: UnsafeMutableRawPointer, lines: Int = 1) {
        for i in 0..<lines { starling_prefetch_write(p + 64 * i) }
    }

    /// The storage of an array: its header (reference count, count, capacity) and first
    /// elements, to be written (see `raw`).
    @inline(__always)
    static func storage<T>(of a: [T]) {
        // An `Array` is one reference to its storage object (checked below in debug builds);
        // reading it does not touch the storage.
        assert(MemoryLayout<[T]>.size == MemoryLayout<UnsafeRawPointer>.size)
        starling_prefetch_write(unsafeBitCast(a, to: UnsafeRawPointer.self))
    }
}
