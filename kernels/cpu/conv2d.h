// 2-D convolution, NCHW, no bias, no groups/dilation: x[n,c,h,w] * w[k,c,r,s]
// -> y[n,k,oh,ow] with oh = (h + 2*pad - r)/stride + 1 (same for ow).
// Implemented as im2col + one BLAS gemm per chunk of images (chunks are sized
// so the gemm sees up to kConvChunkCols columns, at least one image); 1x1 stride-1 unpadded convs on
// large images skip im2col. Every call needs a workspace of
// Conv2dWorkspaceSize(shape) elements of T (the caller owns and reuses it).
#pragma once

#include <cstddef>

namespace dtrain::cpu {

struct Conv2dShape {
  int n = 0, c = 0, h = 0, w = 0;  // input batch, channels, height, width
  int k = 0, r = 0, s = 0;         // output channels, kernel height, width
  int stride = 1, pad = 0;
  int out_h() const { return (h + 2 * pad - r) / stride + 1; }
  int out_w() const { return (w + 2 * pad - s) / stride + 1; }
  size_t in_size() const { return size_t(n) * c * h * w; }
  size_t out_size() const { return size_t(n) * k * out_h() * out_w(); }
  size_t weight_size() const { return size_t(k) * c * r * s; }
  void Check() const;  // throws kInvalidArgument naming the bad field
};

// Images per gemm chunk for this shape (>= 1, <= n).
int Conv2dChunkImages(const Conv2dShape& s);
// Workspace elements (of T) that Conv2dForward/Conv2dBackward need.
size_t Conv2dWorkspaceSize(const Conv2dShape& s);

// y = conv(x, w). y is overwritten.
template <typename T>
void Conv2dForward(const Conv2dShape& s, const T* x, const T* w, T* y,
                   T* workspace);

// Gradients of a conv given dy[n,k,oh,ow]:
//   dx (nullable): input gradient; overwritten, or added to if accumulate_dx.
//   dw (nullable): weight gradient; overwritten.
// x is needed only for dw, w only for dx.
template <typename T>
void Conv2dBackward(const Conv2dShape& s, const T* x, const T* w, const T* dy,
                    T* dx, bool accumulate_dx, T* dw, T* workspace);

}  // namespace dtrain::cpu
