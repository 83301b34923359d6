// Residual add: y = a + b over count elements (y may alias a or b).
// Backward: the gradient reaches both branches unchanged, so
// ResidualAddBackward ADDS dy into da and db (either may be null).
// ResidualAddRelu: y = max(a + b, 0), the end of a residual block; its
// backward is ReluBackward on y followed by ResidualAddBackward.
#pragma once

#include <cstddef>

namespace dtrain::cpu {

template <typename T>
void ResidualAdd(size_t count, const T* a, const T* b, T* y);

template <typename T>
void ResidualAddRelu(size_t count, const T* a, const T* b, T* y);

template <typename T>
void ResidualAddBackward(size_t count, const T* dy, T* da, T* db);

}  // namespace dtrain::cpu
