// JobSpec: the typed job specification, parsed from YAML plus "--set key=value"
// overrides and validated in ONE place (ParseJobSpec). A bad field throws
// Error(kInvalidArgument) naming every bad field and what is allowed; unknown
// keys are rejected. JobSpecToYaml writes the resolved spec that the
// coordinator sends to every rank (ParseJobSpec(JobSpecToYaml(s)) == s).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dtrain {

struct DatasetSpec {
  // fashion-mnist | synthetic (in memory) | imagenet-folder | shards (JPEG/PNG
  // records streamed from disk: PATH/{train,val}/<class>/*, or dtrain-pack's
  // PATH/{train,val}-NNNNN-of-MMMMM.dtshard)
  std::string name = "fashion-mnist";
  std::string path = "/usr/share/datasets/fashion-mnist";
  int64_t train_limit = 0;  // use only the first N training images (0: all; records: N evenly spaced)
  int64_t test_limit = 0;   // use only the first N test images (0: all)
  // synthetic: the images' side; imagenet-folder and shards: the side of the
  // crops the model sees (default 224 there, 32 for synthetic)
  int image_size = 32;
  // imagenet-folder and shards only: decoded as rgb (3 channels) or grey (1),
  // normalised (x/255 - mean[c]) / std[c]; empty: ImageNet's values
  // (rgb 0.485 0.456 0.406 / 0.229 0.224 0.225; grey 0.449 / 0.226)
  std::string color = "rgb";
  std::vector<double> mean;
  std::vector<double> std;
  // synthetic only
  int channels = 3;
  int classes = 10;
  int64_t train_size = 10000;
  int64_t test_size = 2000;
};

struct OptimizerSpec {
  std::string name = "lars";  // sgd | lars
  double momentum = 0.9;
  double weight_decay = 5.0e-5;
  double lars_eta = 0.001;
  double lars_epsilon = 1.0e-9;
  bool nesterov = false;
};

struct ScheduleSpec {
  double base_lr = 2.0;
  double warmup_epochs = 2.0;
  std::string decay = "poly";  // poly | cosine | step | none
  double poly_power = 2.0;
  double end_lr = 0.0;                   // poly and cosine decay towards this
  std::vector<double> step_epochs = {};  // step: multiply by step_gamma at each
  double step_gamma = 0.1;
};

struct AllreduceSpec {
  std::string backend = "auto";  // auto | ucx | nccl | local
  std::string algorithm = "auto";  // auto | ring | hierarchical (ucx; NCCL picks its own)
  std::string dtype = "fp16";    // fp16 | fp32
  double bucket_mb = 4.0;
  double timeout_seconds = 60.0;  // deadline of every collective
};

struct BenchSpec {
  int64_t min_bytes = 1024;
  int64_t max_bytes = 268435456;
  int iterations = 20;  // timed iterations per size (fewer for large sizes)
  int warmup = 3;
};

struct AugmentSpec {
  // pad: random crop of the image zero-padded by crop_padding (CIFAR style);
  // random-resized: torchvision's RandomResizedCrop(image_size, scale, ratio),
  // evaluation Resize(eval_resize) + CenterCrop(image_size) (ImageNet style;
  // imagenet-folder and shards only, their default).
  std::string crop = "pad";
  int crop_padding = 4;  // pad: zero padding (0: no crop)
  bool flip = true;      // random horizontal flip
  double scale_min = 0.08, scale_max = 1.0;          // random-resized: area fraction
  double ratio_min = 0.75, ratio_max = 4.0 / 3.0;    // random-resized: aspect ratio w/h
  int eval_resize = 256;  // random-resized: evaluation resizes the shorter side to this (0: centre crop only)
  bool dct_scaling = true;  // decode JPEGs at the smallest DCT scale that keeps the crop >= the output
};

struct CheckpointSpec {
  std::string dir;          // absolute; checkpoints go to DIR/<job id>/step-N (empty: none)
  int64_t every_steps = 0;  // write one every N steps (0: off)
  double every_epochs = 0;  // or every E epochs (0: off); both set: whichever comes first
  int keep = 2;             // newest checkpoints kept per job (older ones are removed)
};

struct TensorboardSpec {
  // Rank 0 writes TensorBoard scalars (worker --log-dir/<job id>/events.out.tfevents.*)
  // every N steps and at the last step, and at every evaluation (0: off).
  int64_t every_steps = 10;
};

struct JobSpec {
  std::string name = "job";
  std::string kind = "train";  // train | allreduce-bench
  int workers = 1;
  std::optional<uint64_t> seed;  // omitted: the coordinator draws one
  std::string model = "resnet20";
  DatasetSpec dataset;
  int batch_per_worker = 128;
  int epochs = 10;
  int64_t max_steps = 0;  // stop after this many steps (0: run all epochs)
  OptimizerSpec optimizer;
  ScheduleSpec schedule;
  double label_smoothing = 0.1;
  std::string precision = "auto";  // auto (fp16 on the CUDA engine, fp32 on the CPU) | fp32 | fp16
  AllreduceSpec allreduce;
  double eval_every_epochs = 1.0;
  double target_accuracy = 0.0;  // stop early once reached (0: never)
  double bn_momentum = 0.9;      // running = m * running + (1 - m) * batch
  double bn_epsilon = 1.0e-5;
  // "Precise BN": before every evaluation each rank re-estimates the BN
  // running statistics as the plain mean over this many training batches
  // (batch statistics of the current weights), then the ranks average them.
  // 0: evaluate with the running statistics as trained.
  int bn_recalibration_batches = 0;
  bool zero_init_residual = true;  // zero gamma of the last BN of each block
  // false: no batch statistics; each BN becomes a learned per-channel affine
  // (gamma * x + beta). Makes ranks exactly equivalent to one big batch.
  bool batch_norm = true;
  AugmentSpec augment;
  std::string device = "auto";  // auto | cpu | cuda (the worker's own flag wins)
  BenchSpec bench;
  CheckpointSpec checkpoint;
  TensorboardSpec tensorboard;
  // Start from the weights and BN statistics in a safetensors file (`dtrain
  // export`'s, or any file with torchvision's names) instead of the seed's;
  // an absolute path every worker can read. Tensors under an init_from_skip
  // prefix (e.g. [fc] for another class count) keep their seeded values.
  // A resumed job continues from its checkpoint and ignores init_from.
  std::string init_from;
  std::vector<std::string> init_from_skip;
  // A lost worker restarts the job from its last checkpoint (from step 0
  // without one), on a replacement worker when one is idle, at most this often.
  int max_restarts = 0;
  // true: when no replacement is idle within elastic_wait_seconds, continue on
  // the workers there are (at least min_workers), scaling base_lr by the
  // linear rule (workers now / workers) and re-sharding the data.
  bool elastic = false;
  int min_workers = 1;
  double elastic_wait_seconds = 10.0;
  // A job still QUEUED this long after it (last) entered the queue FAILS with
  // the reason it could not start (0: it waits as long as it takes).
  double queue_timeout_seconds = 0.0;
};

// Throws Error(kInvalidArgument) naming each bad field and what is allowed.
JobSpec ParseJobSpec(const std::string& yaml_text,
                     const std::vector<std::string>& overrides = {});

std::string JobSpecToYaml(const JobSpec& spec);

// imagenet-folder and shards: records decoded and augmented per image while
// training, rather than a set loaded whole into memory.
inline bool IsRecordDataset(const std::string& name) { return name == "imagenet-folder" || name == "shards"; }

// Checks the values of an already-built spec (ParseJobSpec calls it).
void ValidateJobSpec(const JobSpec& spec);

}  // namespace dtrain
