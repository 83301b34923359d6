// Element-wise reduction kernels for the host communicators. Memory-bound:
// AVX2/F16C paths when the CPU has them, portable loops otherwise (same
// results: fp16 is widened to fp32, added, scaled, rounded to nearest even).
#pragma once

#include <cstddef>

#include "worker/comm/communicator.h"

namespace dtrain::comm {

// dst[i] = (dst[i] + src[i]) * scale, for `count` elements of `dtype`.
// scale == 1 is a plain sum. dst and src must not overlap.
void ReduceInto(void* dst, const void* src, size_t count, DType dtype, float scale);

}  // namespace dtrain::comm
