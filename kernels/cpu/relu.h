// ReLU over count elements: y = max(x, 0); backward dx = dy where y > 0 else 0.
// Backward uses the forward OUTPUT y. In-place (y == x, dx == dy) is allowed.
#pragma once

#include <cstddef>

namespace dtrain::cpu {

template <typename T>
void ReluForward(size_t count, const T* x, T* y);

template <typename T>
void ReluBackward(size_t count, const T* y, const T* dy, T* dx);

}  // namespace dtrain::cpu
