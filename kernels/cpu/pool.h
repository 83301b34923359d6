// Pooling over NCHW.
// Max pool: window x window, stride, zero-free padding (padded cells never
// win). Forward records in argmax the index (within the h*w plane) of each
// output's maximum; backward scatters dy there (dx is overwritten).
// Global average pool: x[n,c,h,w] -> y[n,c] (mean over h*w); backward spreads
// dy/(h*w) evenly (dx overwritten).
#pragma once

#include <cstddef>
#include <cstdint>

namespace dtrain::cpu {

struct MaxPoolShape {
  int n = 0, c = 0, h = 0, w = 0;
  int window = 3, stride = 2, pad = 1;
  int out_h() const { return (h + 2 * pad - window) / stride + 1; }
  int out_w() const { return (w + 2 * pad - window) / stride + 1; }
  size_t in_size() const { return size_t(n) * c * h * w; }
  size_t out_size() const { return size_t(n) * c * out_h() * out_w(); }
  void Check() const;
};

template <typename T>
void MaxPoolForward(const MaxPoolShape& s, const T* x, T* y, int32_t* argmax);

template <typename T>
void MaxPoolBackward(const MaxPoolShape& s, const T* dy, const int32_t* argmax,
                     T* dx);

struct GlobalAvgPoolShape {
  int n = 0, c = 0, hw = 0;
  void Check() const;
};

template <typename T>
void GlobalAvgPoolForward(const GlobalAvgPoolShape& s, const T* x, T* y);

template <typename T>
void GlobalAvgPoolBackward(const GlobalAvgPoolShape& s, const T* dy, T* dx);

}  // namespace dtrain::cpu
