#include <zlib.h>

// deflateInit2 is a macro (it passes ZLIB_VERSION and sizeof(z_stream)); Swift imports no macro
// with arguments, so this wraps it: a zlib stream (window 32 KiB, memLevel 8) at `level`, with
// `strategy` (Z_DEFAULT_STRATEGY, Z_RLE, ...).
static inline int kosh_deflate_init(z_streamp stream, int level, int strategy) {
    return deflateInit2(stream, level, Z_DEFLATED, 15, 8, strategy);
}
