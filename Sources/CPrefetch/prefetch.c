// The target's functions are all inline, in include/starling_prefetch.h; a C target needs one
// source file.
#include "starling_prefetch.h"
