// eval_checkpoint: evaluates a saved checkpoint in ONE process on the whole
// test set, independently of the job that wrote it, for the integration test
// that checks a multi-rank job's reported accuracy is its saved model's.
//
//   eval_checkpoint SPEC.yaml CHECKPOINT_DIR
// SPEC.yaml is the job's resolved spec (`dtrain status JOB --json`'s
// spec_yaml: it holds the seed). Prints "correct total accuracy top5 loss"
// (top-1 and top-5 as fractions, loss: mean cross-entropy).
#include <cstdio>
#include <fstream>
#include <iterator>

#include "common/error.h"
#include "common/job_spec.h"
#include "worker/comm/local_communicator.h"
#include "worker/data/pipeline.h"
#include "worker/data/sampler.h"
#include "worker/engine/train_engine.h"
#include "worker/trainer/checkpointing.h"
#include "worker/trainer/trainer.h"

using namespace dtrain;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: eval_checkpoint SPEC.yaml CHECKPOINT_DIR\n");
    return 2;
  }
  try {
    std::ifstream in(argv[1]);
    JobSpec spec = ParseJobSpec(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
    if (!spec.seed) Fail(ErrorCode::kInvalidArgument, "the spec has no seed: pass the job's resolved spec");
    const uint64_t seed = *spec.seed;
    auto source = data::OpenDataSource(spec.dataset, spec.augment, seed, 1);
    const data::DataInfo& info = source->info();
    auto comm = comm::MakeLocalCommunicator();
    engine::EngineOptions o;
    o.model_name = spec.model;
    o.model = trainer::ModelOptionsFor(spec, info);
    o.seed = seed;
    o.comm = comm.get();
    auto e = engine::MakeEngine("cpu", o);
    spec.elastic = true;  // written by several ranks, read by one
    const int64_t spe = std::max<int64_t>(1, data::StepsPerEpoch(info.train_size, 1, spec.batch_per_worker));
    trainer::LoadCheckpoint(argv[2], spec, trainer::RunPosition{1, 0, seed, info.train_size, spe}, *e);
    int64_t correct = 0, top5 = 0, seen = 0;
    double loss = 0;
    auto it = source->Eval(1, 0, spec.batch_per_worker);
    data::Batch b;
    while (it->Next(&b)) {
      const engine::EvalStats st = e->Predict(b);
      correct += st.correct;
      top5 += st.correct_top5;
      loss += st.loss_sum;
      seen += b.size;
    }
    std::printf("%lld %lld %.9g %.9g %.9g\n", static_cast<long long>(correct), static_cast<long long>(seen),
                double(float(correct) / float(seen)), double(float(top5) / float(seen)), loss / double(seen));
    return 0;
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "eval_checkpoint: %s\n", ex.what());
    return 1;
  }
}
