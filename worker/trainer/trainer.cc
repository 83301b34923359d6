#include "worker/trainer/trainer.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <memory>

#include "common/error.h"
#include "worker/data/pipeline.h"
#include "worker/engine/train_engine.h"
#include "worker/optim/lr_schedule.h"
#include "worker/trainer/bn_average.h"
#include "worker/trainer/checkpointing.h"
#include "worker/trainer/mlperf_log.h"
#include "worker/trainer/precise_bn.h"
#include "worker/trainer/tensorboard_log.h"

namespace dtrain::trainer {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct EvalResult {
  double top1 = 0, top5 = -1, loss = 0;  // top5 -1: not reported (10 classes or fewer)
};

// Accuracy and mean cross-entropy over the whole test set: each rank predicts
// its share, the sums are added over ranks (every rank gets the same result).
EvalResult Evaluate(engine::TrainEngine& e, data::DataSource& data, const JobSpec& spec, const TrainEnv& env) {
  std::unique_ptr<data::EvalStream> it = data.Eval(env.world_size, env.rank, spec.batch_per_worker);
  double sums[4] = {0, 0, 0, 0};  // correct, top-5 correct, loss, seen (counts exact in fp32 below 2^24)
  data::Batch b;
  while (it->Next(&b)) {
    const engine::EvalStats st = e.Predict(b);
    sums[0] += double(st.correct);
    sums[1] += double(st.correct_top5);
    sums[2] += st.loss_sum;
    sums[3] += double(b.size);
  }
  float c[4] = {float(sums[0]), float(sums[1]), float(sums[2]), float(sums[3])};
  env.comm->AllReduce(c, 4, comm::DType::kF32, comm::ReduceOp::kSum,
                      Deadline::AfterSeconds(spec.allreduce.timeout_seconds, env.abort));
  EvalResult r;
  if (c[3] <= 0) return r;
  r.top1 = c[0] / c[3];
  if (e.arch().num_classes > 10) r.top5 = c[1] / c[3];
  r.loss = c[2] / c[3];
  return r;
}

// Every rank built its weights from the seed alone; check they agree with
// rank 0's before training (a different library or build would show here).
uint64_t VerifySameInitialWeights(engine::TrainEngine& e, const JobSpec& spec, const TrainEnv& env) {
  const uint64_t mine = e.Checksum();
  uint64_t root = mine;
  env.comm->Broadcast(&root, sizeof(root), 0,
                      Deadline::AfterSeconds(spec.allreduce.timeout_seconds, env.abort));
  if (root != mine) {
    Fail(ErrorCode::kInternal, "rank " + std::to_string(env.rank) +
                                   "'s initial weights differ from rank 0's (checksum " +
                                   std::to_string(mine) + " vs " + std::to_string(root) +
                                   "): are all workers the same build?");
  }
  return mine;
}

// After a resume or an init_from load (`source` names what was loaded), every
// rank must hold rank 0's weights.
void VerifySameWeights(engine::TrainEngine& e, const JobSpec& spec, const TrainEnv& env, const std::string& source) {
  const uint64_t mine = e.ParamsChecksum();
  uint64_t root = mine;
  env.comm->Broadcast(&root, sizeof(root), 0,
                      Deadline::AfterSeconds(spec.allreduce.timeout_seconds, env.abort));
  if (root != mine) {
    Fail(ErrorCode::kInternal, "rank " + std::to_string(env.rank) + " loaded other weights than rank 0 from " +
                                   source + ": do all workers see the same files, unchanged while loading?");
  }
}

}  // namespace

model::ModelOptions ModelOptionsFor(const JobSpec& spec, const data::DataInfo& info) {
  model::ModelOptions m;
  m.in_channels = info.channels;
  m.num_classes = info.classes;
  m.image_size = info.image_size;
  m.bn_momentum = spec.bn_momentum;
  m.bn_epsilon = spec.bn_epsilon;
  m.zero_init_residual = spec.zero_init_residual;
  m.batch_norm = spec.batch_norm;
  m.max_batch = spec.batch_per_worker;
  return m;
}

std::string ResolvePrecision(const std::string& precision, const std::string& device) {
  if (precision == "auto") return device == "cuda" ? "fp16" : "fp32";
  if (device == "cuda" && precision != "fp16") {
    Fail(ErrorCode::kInvalidArgument, "precision '" + precision +
                                          "' on the CUDA engine: it computes in fp16 with fp32 master weights; "
                                          "set precision: fp16 (or auto)");
  }
  return precision;
}

namespace {

void CheckAbort(const TrainEnv& env) {
  if (env.abort && env.abort->load()) Fail(ErrorCode::kAborted, "training aborted");
}

double UnixSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The run itself; `mlperf` (null: no MLPerf log) gets the events from run
// start on. RunTraining below writes init_start and run_stop.
TrainOutcome Train(const JobSpec& spec, const TrainEnv& env, MlperfLogger* mlperf) {
  if (!env.comm) Fail(ErrorCode::kInvalidArgument, "RunTraining: no communicator");
  const std::string precision = ResolvePrecision(spec.precision, env.device);
  const auto t_start = Clock::now();
  std::unique_ptr<data::DataSource> source =
      data::OpenDataSource(spec.dataset, spec.augment, env.seed, std::max(1, env.data_threads));
  const data::DataInfo& info = source->info();

  engine::EngineOptions eo;
  eo.model_name = spec.model;
  eo.model = ModelOptionsFor(spec, info);
  eo.seed = env.seed;
  eo.optimizer = spec.optimizer;
  eo.label_smoothing = spec.label_smoothing;
  eo.precision = precision;
  eo.comm = env.comm;
  eo.wire = comm::ParseDType(spec.allreduce.dtype);
  eo.bucket_mb = spec.allreduce.bucket_mb;
  eo.timeout_seconds = spec.allreduce.timeout_seconds;
  eo.abort = env.abort;
  eo.device = env.device_index;
  eo.cpu_kernels = env.cpu_kernels;
  eo.threads = env.compute_threads;
  int64_t current_step = 0;  // for on_wait: the step whose gradients are being averaged
  if (env.on_wait) eo.on_wait = [&](bool waiting) { env.on_wait(current_step, waiting); };
  std::unique_ptr<engine::TrainEngine> eng = engine::MakeEngine(env.device, eo);
  const uint64_t initial_checksum = VerifySameInitialWeights(*eng, spec, env);

  ScheduleSpec sched = spec.schedule;
  if (spec.elastic && env.world_size != spec.workers) {  // linear scaling rule
    const double k = double(env.world_size) / double(spec.workers);
    sched.base_lr *= k;
    sched.end_lr *= k;
    if (env.rank == 0) {
      spdlog::info("elastic: {} of {} workers, base learning rate scaled by {:.3f} to {}", env.world_size,
                   spec.workers, k, sched.base_lr);
    }
  }
  optim::LrSchedule schedule(sched);
  const double wire_bytes = spec.allreduce.dtype == "fp16" ? 2.0 : 4.0;
  const size_t num_params = eng->arch().num_params;

  const int64_t spe0 = data::StepsPerEpoch(info.train_size, env.world_size, spec.batch_per_worker);
  const RunPosition pos{env.world_size, env.rank, env.seed, info.train_size, std::max<int64_t>(1, spe0)};
  int64_t start = 0;
  if (!env.resume_dir.empty()) {
    start = LoadCheckpoint(env.resume_dir, spec, pos, *eng);
    VerifySameWeights(*eng, spec, env, env.resume_dir);
    if (env.rank == 0) spdlog::info("resumed from {} at step {}", env.resume_dir, start);
  } else if (!spec.init_from.empty()) {
    LoadInitialWeights(spec, *eng);
    VerifySameWeights(*eng, spec, env, spec.init_from);
    if (env.rank == 0) {
      std::string kept;
      for (const std::string& k : spec.init_from_skip) kept += (kept.empty() ? " (seeded: " : ", ") + k;
      spdlog::info("initial weights from {}{}", spec.init_from, kept.empty() ? "" : kept + ")");
    }
  }
  data::LoaderOptions lo;
  lo.world_size = env.world_size;
  lo.rank = env.rank;
  lo.batch_per_rank = spec.batch_per_worker;
  lo.seed = env.seed;
  lo.augment = spec.augment;
  lo.start_epoch = start / pos.steps_per_epoch;
  lo.start_step = start % pos.steps_per_epoch;
  std::unique_ptr<data::TrainStream> loader = source->Train(lo);
  const int64_t spe = loader->steps_per_epoch();
  int64_t total = spe * spec.epochs;
  if (spec.max_steps > 0) total = std::min(total, spec.max_steps);
  const int64_t eval_every = std::max<int64_t>(1, std::llround(spec.eval_every_epochs * double(spe)));
  if (env.rank == 0) {
    spdlog::info("initial weights checksum {:016x}, identical on all {} ranks", initial_checksum,
                 env.world_size);
    spdlog::info("training {} on {} ({} params, {} tensors, {} buckets of >= {} MiB, wire {}) on {} "
                 "x {} ranks, batch {} per rank, {} steps per epoch, {} steps",
                 spec.model, eng->describe(), num_params, eng->arch().tensors.size(), eng->num_buckets(),
                 spec.allreduce.bucket_mb, spec.allreduce.dtype, info.description, env.world_size,
                 spec.batch_per_worker, spe, total);
  }
  if (mlperf) {
    mlperf->RunStart(spec, {.world_size = env.world_size,
                            .seed = env.seed,
                            .train_samples = info.train_size,
                            .eval_samples = info.test_size,
                            .steps_per_epoch = spe,
                            .total_steps = total,
                            .eval_every_steps = eval_every});
  }

  TrainOutcome out;
  out.resumed_from_step = start;
  std::string reported_dir = env.resume_dir;  // the checkpoint reported before the newest
  out.steps = start;
  TrainProgress p;
  p.total_steps = total;
  const int64_t warm = start + std::min<int64_t>(3, (total - start) / 2);  // steps left out of the means
  double sum_step = 0, sum_data = 0, sum_compute = 0, sum_comm = 0, sum_update = 0;
  int64_t measured = 0;
  // BN running statistics are averaged over the ranks before every evaluation
  // and checkpoint (bn_average.h), once per step at most.
  bool bn_averaged = false;
  auto average_bn = [&] {
    if (bn_averaged) return;
    AverageBnStatistics(*eng, *env.comm, Deadline::AfterSeconds(spec.allreduce.timeout_seconds, env.abort));
    bn_averaged = true;
  };
  const PreciseBnOptions precise_bn{.batches = spec.batch_norm ? spec.bn_recalibration_batches : 0,
                                    .world_size = env.world_size,
                                    .rank = env.rank,
                                    .batch_per_rank = spec.batch_per_worker,
                                    .seed = env.seed,
                                    .augment = spec.augment};
  std::unique_ptr<TensorboardLog> tb;
  if (env.rank == 0 && !env.tensorboard_dir.empty() && spec.tensorboard.every_steps > 0) {
    tb = std::make_unique<TensorboardLog>(env.tensorboard_dir, TensorboardLog::LocalHost());
  }
  const auto t_loop = Clock::now();
  for (int64_t step = start; step < total; ++step) {
    CheckAbort(env);
    if (mlperf) mlperf->StepStart(step);
    const auto t0 = Clock::now();
    data::Batch batch = loader->Next(Deadline::AfterSeconds(spec.allreduce.timeout_seconds, env.abort));
    const auto t1 = Clock::now();
    const double lr = schedule.lr(step, spe, total);
    current_step = step + 1;
    const engine::StepStats r = eng->Step(batch, lr);
    bn_averaged = false;
    const auto t2 = Clock::now();
    p.comm_seconds = r.comm_seconds;
    p.allreduce_seconds = r.allreduce_seconds;
    p.allreduce_bytes = double(num_params) * wire_bytes;
    p.loss_scale = r.loss_scale;
    p.bad_records = source->bad_records();
    if (r.skipped) ++out.skipped_steps;
    if (!std::isfinite(r.loss)) {
      Fail(ErrorCode::kInternal, "loss is " + std::to_string(r.loss) + " at step " +
                                     std::to_string(step) + ": lower schedule.base_lr");
    }
    p.data_seconds = std::chrono::duration<double>(t1 - t0).count();
    p.compute_seconds = r.compute_seconds;
    p.update_seconds = r.update_seconds;
    const double step_s = std::chrono::duration<double>(t2 - t0).count();
    if (step >= warm) {
      sum_step += step_s;
      sum_data += p.data_seconds;
      sum_compute += p.compute_seconds;
      sum_comm += p.comm_seconds;
      sum_update += p.update_seconds;
      ++measured;
    }
    const double mean_step = measured ? sum_step / measured : step_s;
    const double mean_compute = measured ? (sum_compute + sum_update) / measured
                                         : p.compute_seconds + p.update_seconds;
    p.step = step + 1;
    p.epoch = int(step / spe);
    p.loss = r.loss;
    p.learning_rate = lr;
    p.images_per_second = env.world_size * spec.batch_per_worker / mean_step;
    p.compute_images_per_second = spec.batch_per_worker / mean_compute;
    if (env.losses) env.losses->push_back(r.loss);
    out.final_loss = r.loss;

    if (mlperf) mlperf->StepEnd(step);

    const bool last = step + 1 == total;
    if ((step + 1) % eval_every == 0 || last) {
      if (mlperf) mlperf->EvalStart(step + 1);
      if (precise_bn.batches > 0) {
        RecalibrateBnStatistics(*eng, *source, precise_bn, step + 1,
                                Deadline::AfterSeconds(spec.allreduce.timeout_seconds, env.abort));
        bn_averaged = false;
      }
      average_bn();
      const EvalResult ev = Evaluate(*eng, *source, spec, env);
      p.eval_accuracy = ev.top1;
      p.eval_top5_accuracy = ev.top5;
      p.eval_loss = ev.loss;
      if (mlperf) mlperf->EvalStop(step + 1, ev.top1, ev.loss, ev.top5);
      if (tb) {
        const double now = UnixSeconds();
        tb->Scalar("eval/accuracy", step + 1, ev.top1, now);
        tb->Scalar("eval/loss", step + 1, ev.loss, now);
        if (ev.top5 >= 0) tb->Scalar("eval/top5_accuracy", step + 1, ev.top5, now);
      }
      if (env.rank == 0) {
        spdlog::info("step {}/{} epoch {}: loss {:.4f}, test accuracy {:.4f}{}, test loss {:.4f}, {:.0f} img/s",
                     p.step, total, p.epoch, p.loss, ev.top1,
                     ev.top5 >= 0 ? fmt::format(" (top-5 {:.4f})", ev.top5) : std::string(), ev.loss,
                     p.images_per_second);
      }
      if (spec.target_accuracy > 0 && p.eval_accuracy >= spec.target_accuracy) {
        out.reached_target = true;
      }
    }
    if (tb && ((step + 1) % spec.tensorboard.every_steps == 0 || last || out.reached_target)) {
      const double now = UnixSeconds();
      const std::pair<const char*, double> points[] = {
          {"train/loss", p.loss}, {"train/learning_rate", p.learning_rate},
          {"train/images_per_second", p.images_per_second}, {"time/data_seconds", p.data_seconds},
          {"time/compute_seconds", p.compute_seconds}, {"time/comm_seconds", p.comm_seconds},
          {"time/update_seconds", p.update_seconds}};
      for (const auto& [tag, v] : points) tb->Scalar(tag, p.step, v, now);
    }
    // The final weights are always saved (and reported) when checkpoints are on.
    if (!env.checkpoint_dir.empty() &&
        (last || out.reached_target || CheckpointDue(spec.checkpoint, step + 1, spe))) {
      const std::string dir = CheckpointStepDir(env.checkpoint_dir, step + 1);
      average_bn();
      WriteCheckpoint(dir, spec, pos, step + 1, *eng);
      env.comm->Barrier(Deadline::AfterSeconds(spec.allreduce.timeout_seconds, env.abort));
      if (env.rank == 0) {
        if (env.on_checkpoint) env.on_checkpoint(step + 1, dir);
        PruneCheckpoints(env.checkpoint_dir, spec.checkpoint.keep, step + 1, reported_dir);
        reported_dir = dir;
      }
    }
    p.message = "epoch " + std::to_string(p.epoch + 1) + "/" + std::to_string(spec.epochs) +
                ", lr " + std::to_string(lr).substr(0, 7);
    if (env.on_progress) env.on_progress(p);
    out.steps = p.step;
    if (out.reached_target) break;
  }
  out.epochs = int((out.steps + spe - 1) / spe);
  out.eval_accuracy = p.eval_accuracy;
  out.eval_top5_accuracy = p.eval_top5_accuracy;
  out.eval_loss = p.eval_loss;
  out.seconds = Since(t_loop);
  out.images_per_second = p.images_per_second;
  if (measured > 0) {
    out.data_seconds = sum_data / measured;
    out.compute_seconds = sum_compute / measured;
    out.comm_seconds = sum_comm / measured;
    out.update_seconds = sum_update / measured;
  }
  out.bad_records = source->bad_records();
  out.initial_checksum = initial_checksum;
  out.weight_checksum = eng->Checksum();
  if (env.final_params) {
    engine::EngineState st;
    eng->ExportState(&st);
    *env.final_params = std::move(st.params);
  }
  spdlog::info("rank {}: trained {} steps in {:.1f} s (setup {:.1f} s), accuracy {:.4f}",
               env.rank, out.steps, out.seconds, Since(t_start) - out.seconds, out.eval_accuracy);
  return out;
}

}  // namespace

TrainOutcome RunTraining(const JobSpec& spec, const TrainEnv& env) {
  std::unique_ptr<MlperfLogger> mlperf;
  if (env.rank == 0 && !env.mlperf_log_path.empty()) {
    mlperf = std::make_unique<MlperfLogger>(env.mlperf_log_path);
    mlperf->InitStart(env.world_size);
  }
  try {
    TrainOutcome out = Train(spec, env, mlperf.get());
    if (mlperf) mlperf->RunStop(out.reached_target);  // MLPerf: "success" only at the target
    return out;
  } catch (...) {
    if (mlperf) {
      try {
        mlperf->RunStop(false);
      } catch (const std::exception& log_error) {
        spdlog::warn("MLPerf log: {}", log_error.what());
      }
    }
    throw;
  }
}

}  // namespace dtrain::trainer
