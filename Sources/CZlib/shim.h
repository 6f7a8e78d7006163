#include <zlib.h>

// inflateInit2/deflateInit2 are macros (they pass the library version and struct size), which
// Swift cannot call; these wrappers expand them.
static inline int czlib_inflateInit2(z_streamp stream, int windowBits) {
    return inflateInit2(stream, windowBits);
}

static inline int czlib_deflateInit2(z_streamp stream, int level, int method, int windowBits, int memLevel, int strategy) {
    return deflateInit2(stream, level, method, windowBits, memLevel, strategy);
}
