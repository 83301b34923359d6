// CoordinatorMetrics: the coordinator's Prometheus metrics, read from the core
// at scrape time. Per running job (label job): global images/s, world size,
// scaling efficiency (global img/s / sum of the ranks' compute-only img/s),
// step, stalled ranks; per stalled rank (job, rank, host) the seconds it is
// behind; jobs and workers by state.
#pragma once

#include <prometheus/collectable.h>

#include "coordinator/core.h"

namespace dtrain::coordinator {

class CoordinatorMetrics final : public prometheus::Collectable {
 public:
  explicit CoordinatorMetrics(const CoordinatorCore& core) : core_(core) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const CoordinatorCore& core_;
};

}  // namespace dtrain::coordinator
