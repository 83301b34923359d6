// Pooling on oneDNN (fp32), the activations in layout xd ([n, c, h, w]):
//   Max pool (kernels/cpu/pool.h's MaxPoolShape; padded cells never win):
//     MaxForward writes y in MaxDstDesc(xd, s) and, when ws is given
//     (training), the positions of the maxima into ws (MaxWorkspaceBytes);
//     MaxBackward scatters dy (layout MaxDstDesc) there, dx in xd overwritten.
//   Global average pool: y[n, c] (plain) = mean over h*w; backward spreads
//     dy[n, c] / (h*w) over dx (layout xd, overwritten).
// Primitives are created once per (layout, shape) and cached.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "kernels/cpu/pool.h"
#include "kernels/dnnl/runtime.h"

namespace dtrain::onednn {

class PoolDnnl {
 public:
  explicit PoolDnnl(int threads = 1);
  ~PoolDnnl();
  PoolDnnl(const PoolDnnl&) = delete;
  PoolDnnl& operator=(const PoolDnnl&) = delete;

  Desc MaxDstDesc(const Desc& xd, const cpu::MaxPoolShape& s);
  size_t MaxWorkspaceBytes(const Desc& xd, const cpu::MaxPoolShape& s);
  void MaxForward(const Desc& xd, const cpu::MaxPoolShape& s, const float* x, float* y,
                  uint8_t* ws);
  void MaxBackward(const Desc& xd, const cpu::MaxPoolShape& s, const float* dy,
                   const uint8_t* ws, float* dx);

  void GlobalAvgForward(const Desc& xd, const float* x, float* y);
  void GlobalAvgBackward(const Desc& xd, const float* dy, float* dx);

  size_t primitives_created() const;

 private:
  struct Impl;
  int threads_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dtrain::onednn
