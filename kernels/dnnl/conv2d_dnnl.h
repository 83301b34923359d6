// 2-D convolution on oneDNN (Debian's libdnnl, CPU engine, fp32): the same
// contract as kernels/cpu/conv2d.h (Conv2dShape; NCHW x/y/dx/dy, [k,c,r,s]
// weights; y and dw overwritten, dx overwritten or added to), no workspace.
//
// Inside, the primitives use the layouts oneDNN prefers (format_tag::any) and
// reorder at the edges. Every primitive (convolutions, reorders) is created
// once per shape/layout and cached in the Conv2dDnnl object; a later call with
// the same shape creates nothing (primitives_created() counts creations).
// One CPU engine and one stream per process (runtime.h).
//
// Blocked-layout variant (for an engine that chains layers without reorders):
// SrcDesc(s) is the layout of x and dx, DstDesc(s) that of y and dy (the
// gradient of a tensor always has the tensor's layout). ForwardBlocked takes
// x in any layout xd (reordered only if xd != SrcDesc) and writes y in DstDesc;
// BackwardBlocked takes dy in any layout dyd and writes dx in x's layout xd
// (the primitives run in SrcDesc/DstDesc, with reorders only where a layout
// differs). Weights stay [k,c,r,s].
// Convert at the model's edges with Reorder (Nchw(...) names the plain layout).
//
// Threads: Debian builds oneDNN with the OpenMP runtime; each call runs with
// `threads` OpenMP threads on the calling thread (set for the call, restored
// after). An object is not safe for concurrent calls (one per engine thread).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "kernels/cpu/conv2d.h"
#include "kernels/dnnl/runtime.h"

namespace dtrain::onednn {

using cpu::Conv2dShape;

class Conv2dDnnl {
 public:
  explicit Conv2dDnnl(int threads = 1);  // threads >= 1
  ~Conv2dDnnl();
  Conv2dDnnl(const Conv2dDnnl&) = delete;
  Conv2dDnnl& operator=(const Conv2dDnnl&) = delete;

  // NCHW at the API (kernels/cpu/conv2d.h's Conv2dForward/Conv2dBackward).
  void Forward(const Conv2dShape& s, const float* x, const float* w, float* y);
  // dx, dw nullable; x needed only for dw, w only for dx.
  void Backward(const Conv2dShape& s, const float* x, const float* w, const float* dy,
                float* dx, bool accumulate_dx, float* dw);

  // Blocked layouts (oneDNN's choice for this shape; see above).
  Desc SrcDesc(const Conv2dShape& s);
  Desc DstDesc(const Conv2dShape& s);
  void ForwardBlocked(const Conv2dShape& s, const Desc& xd, const float* x, const float* w,
                      float* y);
  void BackwardBlocked(const Conv2dShape& s, const Desc& xd, const float* x, const float* w,
                       const Desc& dyd, const float* dy, float* dx, bool accumulate_dx,
                       float* dw);

  // dst (layout to) = src (layout from), or dst += src when accumulate. Same
  // logical dims. A no-op when the layouts match, the pointers are equal and
  // !accumulate.
  void Reorder(const Desc& from, const float* src, const Desc& to, float* dst,
               bool accumulate = false);

  // oneDNN's implementation names for this shape ("fwd=jit:avx bwd_d=... bwd_w=...").
  std::string ImplInfo(const Conv2dShape& s);
  // Primitive descriptors + primitives this object has created so far.
  size_t primitives_created() const;
  int threads() const { return threads_; }

 private:
  struct Impl;
  int threads_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dtrain::onednn
