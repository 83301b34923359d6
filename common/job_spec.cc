#include "common/job_spec.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <set>
#include <sstream>
#include <tuple>

#include "common/error.h"

namespace dtrain {
namespace {

// Collects every problem of a spec so the user sees them all at once.
class Problems {
 public:
  void Add(const std::string& field, const std::string& what) {
    items_.push_back("field `" + field + "`: " + what);
  }
  void ThrowIfAny() const {
    if (items_.empty()) return;
    std::string msg = "invalid job spec: ";
    for (size_t i = 0; i < items_.size(); ++i) msg += (i ? "; " : "") + items_[i];
    Fail(ErrorCode::kInvalidArgument, msg);
  }

 private:
  std::vector<std::string> items_;
};

std::string Join(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

bool IsDecimal(const std::string& t) {
  size_t i = (!t.empty() && (t[0] == '-' || t[0] == '+')) ? 1 : 0;
  if (i == t.size()) return false;
  for (; i < t.size(); ++i)
    if (t[i] < '0' || t[i] > '9') return false;
  return true;
}

std::string Scalar(const YAML::Node& n) {
  return n.IsScalar() ? "'" + n.Scalar() + "'" : "a " + std::string(n.IsMap() ? "map" : "list");
}

// Reads typed fields out of a YAML map and rejects keys nobody asked for.
class Reader {
 public:
  Reader(const YAML::Node& node, std::string prefix, Problems& p)
      : node_(node), prefix_(std::move(prefix)), p_(p) {}

  template <class T>
  void Get(const char* key, T& out, const char* type_name) {
    seen_.insert(key);
    if (!node_ || !node_.IsMap()) return;
    const YAML::Node& cnode = node_;
    const YAML::Node v = cnode[key];
    if (!v) return;
    if (v.IsNull()) {
      p_.Add(Join(prefix_, key), std::string("has no value (expected ") + type_name + ")");
      return;
    }
    try {
      if constexpr (std::is_same_v<T, uint64_t> || std::is_same_v<T, int64_t> ||
                    std::is_same_v<T, int>) {
        // Plain decimal only: yaml-cpp would also read 0x2, 0o7, 1e3 or 1_000.
        if (!v.IsScalar() || !IsDecimal(v.Scalar())) throw 0;
        if (std::is_same_v<T, uint64_t> && v.Scalar()[0] == '-') throw 0;
      }
      out = v.as<T>();
    } catch (...) {
      p_.Add(Join(prefix_, key), Scalar(v) + " is not " + type_name);
    }
  }

  void Known(const char* key) { seen_.insert(key); }

  Reader Sub(const char* key) {
    seen_.insert(key);
    const YAML::Node& cnode = node_;
    YAML::Node v = cnode && cnode.IsMap() ? cnode[key] : YAML::Node();
    if (v && !v.IsNull() && !v.IsMap()) {
      p_.Add(Join(prefix_, key), Scalar(v) + " is not a map");
      v = YAML::Node();
    }
    return Reader(v, Join(prefix_, key), p_);
  }

  // Call last: names each unknown key and lists the allowed ones.
  void RejectUnknown() {
    if (!node_ || !node_.IsMap()) return;
    std::string allowed;
    for (const auto& k : seen_) allowed += (allowed.empty() ? "" : ", ") + k;
    std::set<std::string> keys;
    for (const auto& kv : node_) {
      if (kv.first.IsMap() || kv.first.IsSequence()) {  // e.g. "{[1]: 2}" (found by fuzzing)
        p_.Add(prefix_.empty() ? "(top level)" : prefix_,
               std::string("a ") + (kv.first.IsMap() ? "map" : "list") + " is not a field name (allowed here: " +
                   allowed + ")");
        continue;
      }
      const std::string k = kv.first.as<std::string>();  // a null key reads as "null"
      if (!keys.insert(k).second) {
        p_.Add(Join(prefix_, k), "appears more than once (each field at most once)");
        continue;
      }
      if (!seen_.count(k)) p_.Add(Join(prefix_, k), "unknown field (allowed here: " + allowed + ")");
    }
  }

 private:
  YAML::Node node_;
  std::string prefix_;
  Problems& p_;
  std::set<std::string> seen_;
};

// Applies "a.b.c=value" to the YAML tree; the value is parsed as YAML.
void ApplyOverride(YAML::Node& root, const std::string& kv) {
  const auto eq = kv.find('=');
  if (eq == std::string::npos || eq == 0) {
    Fail(ErrorCode::kInvalidArgument,
         "--set '" + kv + "': expected key=value with a dotted key, e.g. --set optimizer.lars_eta=0.002");
  }
  const std::string key = kv.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(kv.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    Fail(ErrorCode::kInvalidArgument, "--set '" + kv + "': value is not valid YAML: " + e.msg);
  }
  std::vector<std::string> parts;
  std::stringstream ss(key);
  for (std::string part; std::getline(ss, part, '.');) {
    if (part.empty()) Fail(ErrorCode::kInvalidArgument, "--set '" + kv + "': empty key component");
    parts.push_back(part);
  }
  std::vector<YAML::Node> path{root};
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node next = path.back()[parts[i]];
    if (next && !next.IsNull() && !next.IsMap()) {
      Fail(ErrorCode::kInvalidArgument, "--set '" + kv + "': `" + parts[i] + "` is not a map");
    }
    if (!next || next.IsNull()) {
      path.back()[parts[i]] = YAML::Node(YAML::NodeType::Map);
      next = path.back()[parts[i]];
    }
    path.push_back(next);
  }
  path.back()[parts.back()] = value;
}

template <class T>
void Range(Problems& p, const char* field, T v, T lo, T hi, const char* unit = "") {
  if (!(lo <= hi)) return;  // a bound from another field that is itself invalid (reported there)
  if (!(v >= lo && v <= hi)) {
    std::ostringstream os;
    os << v << " is out of range (allowed: " << lo << " .. " << hi << unit << ")";
    p.Add(field, os.str());
  }
}

void OneOf(Problems& p, const char* field, const std::string& v,
           std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (v == a) return;
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  p.Add(field, "'" + v + "' is not allowed (allowed: " + list + ")");
}

}  // namespace

namespace {

void CheckValues(const JobSpec& s, Problems& p) {
  if (s.name.empty() || s.name.size() > 64 ||
      s.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
          std::string::npos) {
    p.Add("name", "'" + s.name + "' is not allowed (1 to 64 of A-Z a-z 0-9 . _ -)");
  }
  OneOf(p, "kind", s.kind, {"train", "allreduce-bench"});
  Range(p, "workers", s.workers, 1, 4096);
  OneOf(p, "model", s.model,
        {"resnet20", "resnet32", "resnet56", "resnet18", "resnet34", "resnet50", "resnet101",
         "resnet152"});
  OneOf(p, "dataset.name", s.dataset.name, {"fashion-mnist", "synthetic", "imagenet-folder", "shards"});
  const bool records = IsRecordDataset(s.dataset.name);
  OneOf(p, "dataset.color", s.dataset.color, {"rgb", "grey"});
  const size_t channels = s.dataset.color == "grey" ? 1 : 3;
  for (const auto& [field, values, lo, hi] :
       {std::tuple{"dataset.mean", &s.dataset.mean, 0.0, 1.0}, std::tuple{"dataset.std", &s.dataset.std, 1e-3, 10.0}}) {
    if (values->empty()) continue;
    if (!records) {
      p.Add(field, "applies to imagenet-folder and shards only (the in-memory sets compute theirs)");
    } else if (values->size() != channels) {
      p.Add(field, std::to_string(values->size()) + " values for " + std::to_string(channels) +
                       " channels (dataset.color '" + s.dataset.color + "')");
    }
    for (double v : *values) Range(p, field, v, lo, hi);
  }
  OneOf(p, "augment.crop", s.augment.crop, {"pad", "random-resized"});
  if (s.augment.crop == "random-resized" && !records) {
    p.Add("augment.crop", "'random-resized' needs a record data set (imagenet-folder, shards); '" + s.dataset.name +
                              "' allows: pad");
  }
  Range(p, "augment.scale_min", s.augment.scale_min, 1e-4, 1.0);
  Range(p, "augment.scale_max", s.augment.scale_max, s.augment.scale_min, 1.0, " (from scale_min)");
  Range(p, "augment.ratio_min", s.augment.ratio_min, 0.01, 100.0);
  Range(p, "augment.ratio_max", s.augment.ratio_max, s.augment.ratio_min, 100.0, " (from ratio_min)");
  if (s.augment.eval_resize != 0) {
    Range(p, "augment.eval_resize", s.augment.eval_resize, s.dataset.image_size, 4096,
          " (0, or at least dataset.image_size)");
  }
  if (s.dataset.name != "synthetic" && s.dataset.path.empty()) {
    p.Add("dataset.path", "must name the data set's folder for '" + s.dataset.name + "'");
  }
  Range<int64_t>(p, "dataset.train_limit", s.dataset.train_limit, 0, int64_t(1) << 40);
  Range<int64_t>(p, "dataset.test_limit", s.dataset.test_limit, 0, int64_t(1) << 40);
  Range(p, "dataset.image_size", s.dataset.image_size, 8, records ? 1024 : 512);
  Range(p, "dataset.channels", s.dataset.channels, 1, 4);
  Range(p, "dataset.classes", s.dataset.classes, 2, 100000);
  Range<int64_t>(p, "dataset.train_size", s.dataset.train_size, 1, int64_t(1) << 32);
  Range<int64_t>(p, "dataset.test_size", s.dataset.test_size, 0, int64_t(1) << 32);
  Range(p, "batch_per_worker", s.batch_per_worker, 1, 65536);
  Range(p, "epochs", s.epochs, 1, 10000);
  Range<int64_t>(p, "max_steps", s.max_steps, 0, int64_t(1) << 40);
  OneOf(p, "optimizer.name", s.optimizer.name, {"sgd", "lars"});
  Range(p, "optimizer.momentum", s.optimizer.momentum, 0.0, 0.999999);
  Range(p, "optimizer.weight_decay", s.optimizer.weight_decay, 0.0, 0.1);
  Range(p, "optimizer.lars_eta", s.optimizer.lars_eta, 1e-9, 1.0);
  Range(p, "optimizer.lars_epsilon", s.optimizer.lars_epsilon, 0.0, 1.0);
  Range(p, "schedule.base_lr", s.schedule.base_lr, 1e-9, 1000.0);
  if (s.epochs >= 1 && !(s.schedule.warmup_epochs >= 0 && s.schedule.warmup_epochs <= s.epochs)) {
    std::ostringstream os;
    os << s.schedule.warmup_epochs << " is out of range (allowed: 0 .. " << s.epochs << " (epochs))";
    if (s.schedule.warmup_epochs == ScheduleSpec{}.warmup_epochs) {
      os << "; " << ScheduleSpec{}.warmup_epochs << " is the default: set it too, e.g. --set schedule.warmup_epochs="
         << s.epochs / 4.0;
    }
    p.Add("schedule.warmup_epochs", os.str());
  }
  OneOf(p, "schedule.decay", s.schedule.decay, {"poly", "cosine", "step", "none"});
  Range(p, "schedule.poly_power", s.schedule.poly_power, 1e-3, 100.0);
  Range(p, "schedule.end_lr", s.schedule.end_lr, 0.0, s.schedule.base_lr, " (base_lr)");
  Range(p, "schedule.step_gamma", s.schedule.step_gamma, 1e-9, 1.0);
  for (size_t i = 0; i < s.schedule.step_epochs.size(); ++i) {
    const double e = s.schedule.step_epochs[i];
    if (!(e > 0 && e <= s.epochs) || (i > 0 && e <= s.schedule.step_epochs[i - 1])) {
      p.Add("schedule.step_epochs", "must be increasing epochs in (0, epochs]");
      break;
    }
  }
  Range(p, "label_smoothing", s.label_smoothing, 0.0, 0.999);
  OneOf(p, "precision", s.precision, {"auto", "fp32", "fp16"});
  OneOf(p, "allreduce.backend", s.allreduce.backend, {"auto", "ucx", "nccl", "local"});
  OneOf(p, "allreduce.dtype", s.allreduce.dtype, {"fp16", "fp32"});
  OneOf(p, "allreduce.algorithm", s.allreduce.algorithm, {"auto", "ring", "hierarchical"});
  if (s.allreduce.backend == "nccl" && s.allreduce.algorithm == "hierarchical") {
    p.Add("allreduce.algorithm", "'hierarchical' is the UCX backend's schedule; NCCL chooses ring, tree "
                                 "or NVLS itself per call (NCCL_ALGO to force one): use algorithm auto "
                                 "with backend nccl, or backend ucx/auto with hierarchical");
  }
  Range(p, "allreduce.bucket_mb", s.allreduce.bucket_mb, 1e-3, 1024.0, " MiB");
  Range(p, "allreduce.timeout_seconds", s.allreduce.timeout_seconds, 0.1, 86400.0, " s");
  if (s.allreduce.backend == "local" && s.workers != 1) {
    p.Add("allreduce.backend", "'local' needs workers: 1 (allowed with more workers: auto, ucx, nccl)");
  }
  Range(p, "eval_every_epochs", s.eval_every_epochs, 1e-3, 10000.0);
  Range(p, "target_accuracy", s.target_accuracy, 0.0, 1.0);
  Range(p, "bn_momentum", s.bn_momentum, 0.0, 0.999999);
  Range(p, "bn_epsilon", s.bn_epsilon, 1e-12, 1.0);
  Range(p, "bn_recalibration_batches", s.bn_recalibration_batches, 0, 100000);
  Range(p, "augment.crop_padding", s.augment.crop_padding, 0, 64);
  OneOf(p, "device", s.device, {"auto", "cpu", "cuda"});
  Range<int64_t>(p, "bench.min_bytes", s.bench.min_bytes, 4, int64_t(1) << 32);
  Range<int64_t>(p, "bench.max_bytes", s.bench.max_bytes, s.bench.min_bytes, int64_t(1) << 32,
                 " bytes, and at least bench.min_bytes");
  Range(p, "bench.iterations", s.bench.iterations, 1, 100000);
  Range(p, "bench.warmup", s.bench.warmup, 0, 10000);
  if (!s.checkpoint.dir.empty() && s.checkpoint.dir[0] != '/') {
    p.Add("checkpoint.dir", "'" + s.checkpoint.dir + "' must be an absolute path (every worker writes there)");
  }
  Range<int64_t>(p, "checkpoint.every_steps", s.checkpoint.every_steps, 0, int64_t(1) << 40);
  Range(p, "checkpoint.every_epochs", s.checkpoint.every_epochs, 0.0, 10000.0);
  Range(p, "checkpoint.keep", s.checkpoint.keep, 1, 1000);
  Range<int64_t>(p, "tensorboard.every_steps", s.tensorboard.every_steps, 0, 1000000000);
  if (s.checkpoint.dir.empty() && (s.checkpoint.every_steps > 0 || s.checkpoint.every_epochs > 0)) {
    p.Add("checkpoint.dir", "must be set when checkpoint.every_steps or checkpoint.every_epochs is");
  }
  if (!s.init_from.empty() && s.init_from[0] != '/') {
    p.Add("init_from", "'" + s.init_from + "' must be an absolute path (every worker reads it)");
  }
  if (s.init_from.empty() && !s.init_from_skip.empty()) {
    p.Add("init_from_skip", "is only meaningful with init_from (the file to start from)");
  }
  for (const std::string& k : s.init_from_skip) {
    if (k.empty() || k.front() == '.' || k.back() == '.') {
      p.Add("init_from_skip", "'" + k + "' is not a tensor name or prefix (e.g. fc, layer4.2)");
    }
  }
  Range(p, "max_restarts", s.max_restarts, 0, 1000);
  Range(p, "min_workers", s.min_workers, 1, s.workers, " (workers)");
  Range(p, "elastic_wait_seconds", s.elastic_wait_seconds, 0.0, 86400.0, " s");
  if (!(s.queue_timeout_seconds >= 0 && s.queue_timeout_seconds <= 31536000.0)) {
    std::ostringstream os;
    os << s.queue_timeout_seconds
       << " is out of range (allowed: 0 for no timeout, or seconds up to 31536000, a year)";
    p.Add("queue_timeout_seconds", os.str());
  }
}

}  // namespace

void ValidateJobSpec(const JobSpec& s) {
  Problems p;
  CheckValues(s, p);
  p.ThrowIfAny();
}

JobSpec ParseJobSpec(const std::string& yaml_text, const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    Fail(ErrorCode::kInvalidArgument, "invalid job spec: YAML syntax error at line " +
                                          std::to_string(e.mark.line + 1) + ", column " +
                                          std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  if (!root || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) Fail(ErrorCode::kInvalidArgument, "invalid job spec: the top level must be a map of fields");
  for (const auto& kv : overrides) ApplyOverride(root, kv);

  JobSpec s;
  Problems p;
  Reader r(root, "", p);
  r.Get("name", s.name, "a string");
  r.Get("kind", s.kind, "a string");
  r.Get("workers", s.workers, "an integer");
  uint64_t seed = 0;
  const YAML::Node& croot = root;
  const bool has_seed = croot["seed"] && !croot["seed"].IsNull();
  if (has_seed) {
    r.Get("seed", seed, "an unsigned 64-bit integer");
    s.seed = seed;
  } else {
    r.Known("seed");  // omitted or null: the coordinator draws one
  }
  r.Get("model", s.model, "a string");
  {
    Reader d = r.Sub("dataset");
    d.Get("name", s.dataset.name, "a string");
    d.Get("path", s.dataset.path, "a string");
    d.Get("train_limit", s.dataset.train_limit, "an integer");
    d.Get("test_limit", s.dataset.test_limit, "an integer");
    d.Get("image_size", s.dataset.image_size, "an integer");
    d.Get("channels", s.dataset.channels, "an integer");
    d.Get("classes", s.dataset.classes, "an integer");
    d.Get("train_size", s.dataset.train_size, "an integer");
    d.Get("test_size", s.dataset.test_size, "an integer");
    d.Get("color", s.dataset.color, "a string");
    d.Get("mean", s.dataset.mean, "a list of numbers");
    d.Get("std", s.dataset.std, "a list of numbers");
    d.RejectUnknown();
  }
  r.Get("batch_per_worker", s.batch_per_worker, "an integer");
  r.Get("epochs", s.epochs, "an integer");
  r.Get("max_steps", s.max_steps, "an integer");
  {
    Reader o = r.Sub("optimizer");
    o.Get("name", s.optimizer.name, "a string");
    o.Get("momentum", s.optimizer.momentum, "a number");
    o.Get("weight_decay", s.optimizer.weight_decay, "a number");
    o.Get("lars_eta", s.optimizer.lars_eta, "a number");
    o.Get("lars_epsilon", s.optimizer.lars_epsilon, "a number");
    o.Get("nesterov", s.optimizer.nesterov, "true or false");
    o.RejectUnknown();
  }
  {
    Reader o = r.Sub("schedule");
    o.Get("base_lr", s.schedule.base_lr, "a number");
    o.Get("warmup_epochs", s.schedule.warmup_epochs, "a number");
    o.Get("decay", s.schedule.decay, "a string");
    o.Get("poly_power", s.schedule.poly_power, "a number");
    o.Get("end_lr", s.schedule.end_lr, "a number");
    o.Get("step_epochs", s.schedule.step_epochs, "a list of numbers");
    o.Get("step_gamma", s.schedule.step_gamma, "a number");
    o.RejectUnknown();
  }
  r.Get("label_smoothing", s.label_smoothing, "a number");
  r.Get("precision", s.precision, "a string");
  {
    Reader o = r.Sub("allreduce");
    o.Get("backend", s.allreduce.backend, "a string");
    o.Get("dtype", s.allreduce.dtype, "a string");
    o.Get("algorithm", s.allreduce.algorithm, "a string");
    o.Get("bucket_mb", s.allreduce.bucket_mb, "a number");
    o.Get("timeout_seconds", s.allreduce.timeout_seconds, "a number");
    o.RejectUnknown();
  }
  r.Get("eval_every_epochs", s.eval_every_epochs, "a number");
  r.Get("target_accuracy", s.target_accuracy, "a number");
  r.Get("bn_momentum", s.bn_momentum, "a number");
  r.Get("bn_epsilon", s.bn_epsilon, "a number");
  r.Get("bn_recalibration_batches", s.bn_recalibration_batches, "an integer");
  r.Get("zero_init_residual", s.zero_init_residual, "true or false");
  r.Get("batch_norm", s.batch_norm, "true or false");
  {
    Reader o = r.Sub("augment");
    o.Get("crop", s.augment.crop, "a string");
    o.Get("crop_padding", s.augment.crop_padding, "an integer");
    o.Get("flip", s.augment.flip, "true or false");
    o.Get("scale_min", s.augment.scale_min, "a number");
    o.Get("scale_max", s.augment.scale_max, "a number");
    o.Get("ratio_min", s.augment.ratio_min, "a number");
    o.Get("ratio_max", s.augment.ratio_max, "a number");
    o.Get("eval_resize", s.augment.eval_resize, "an integer");
    o.Get("dct_scaling", s.augment.dct_scaling, "true or false");
    o.RejectUnknown();
  }
  r.Get("device", s.device, "a string");
  {
    Reader o = r.Sub("bench");
    o.Get("min_bytes", s.bench.min_bytes, "an integer");
    o.Get("max_bytes", s.bench.max_bytes, "an integer");
    o.Get("iterations", s.bench.iterations, "an integer");
    o.Get("warmup", s.bench.warmup, "an integer");
    o.RejectUnknown();
  }
  {
    Reader o = r.Sub("checkpoint");
    o.Get("dir", s.checkpoint.dir, "a string");
    o.Get("every_steps", s.checkpoint.every_steps, "an integer");
    o.Get("every_epochs", s.checkpoint.every_epochs, "a number");
    o.Get("keep", s.checkpoint.keep, "an integer");
    o.RejectUnknown();
  }
  {
    Reader o = r.Sub("tensorboard");
    o.Get("every_steps", s.tensorboard.every_steps, "an integer");
    o.RejectUnknown();
  }
  r.Get("init_from", s.init_from, "a string");
  r.Get("init_from_skip", s.init_from_skip, "a list of tensor name prefixes");
  r.Get("max_restarts", s.max_restarts, "an integer");
  r.Get("elastic", s.elastic, "true or false");
  r.Get("min_workers", s.min_workers, "an integer");
  r.Get("elastic_wait_seconds", s.elastic_wait_seconds, "a number");
  r.Get("queue_timeout_seconds", s.queue_timeout_seconds, "a number");
  r.RejectUnknown();
  // Every spec names its kind, and a training spec its model (an empty,
  // comment-only, `---` or `{}` spec is refused, not run with the defaults).
  if (!croot["kind"] || croot["kind"].IsNull()) {
    p.Add("kind", "is missing: every spec names its kind (allowed: train, allreduce-bench)");
  } else if (s.kind == "train" && (!croot["model"] || croot["model"].IsNull())) {
    p.Add("model", "is missing: a train spec names its model (allowed: resnet20, resnet32, resnet56, resnet18, "
                   "resnet34, resnet50, resnet101, resnet152)");
  }
  // Record data sets default to ImageNet's geometry where the spec is silent.
  if (IsRecordDataset(s.dataset.name)) {
    const YAML::Node ds = croot["dataset"];
    if (!(ds && ds.IsMap() && ds["image_size"])) s.dataset.image_size = 224;
    const YAML::Node au = croot["augment"];
    if (!(au && au.IsMap() && au["crop"])) s.augment.crop = "random-resized";
  }
  CheckValues(s, p);  // with the type errors above: every problem at once
  p.ThrowIfAny();
  return s;
}

std::string JobSpecToYaml(const JobSpec& s) {
  YAML::Emitter e;
  e.SetDoublePrecision(17);
  e << YAML::BeginMap;
  e << YAML::Key << "name" << YAML::Value << s.name;
  e << YAML::Key << "kind" << YAML::Value << s.kind;
  e << YAML::Key << "workers" << YAML::Value << s.workers;
  if (s.seed) e << YAML::Key << "seed" << YAML::Value << *s.seed;
  e << YAML::Key << "model" << YAML::Value << s.model;
  e << YAML::Key << "dataset" << YAML::Value << YAML::BeginMap
    << YAML::Key << "name" << YAML::Value << s.dataset.name
    << YAML::Key << "path" << YAML::Value << s.dataset.path
    << YAML::Key << "train_limit" << YAML::Value << s.dataset.train_limit
    << YAML::Key << "test_limit" << YAML::Value << s.dataset.test_limit
    << YAML::Key << "image_size" << YAML::Value << s.dataset.image_size
    << YAML::Key << "channels" << YAML::Value << s.dataset.channels
    << YAML::Key << "classes" << YAML::Value << s.dataset.classes
    << YAML::Key << "train_size" << YAML::Value << s.dataset.train_size
    << YAML::Key << "test_size" << YAML::Value << s.dataset.test_size
    << YAML::Key << "color" << YAML::Value << s.dataset.color
    << YAML::Key << "mean" << YAML::Value << YAML::Flow << s.dataset.mean
    << YAML::Key << "std" << YAML::Value << YAML::Flow << s.dataset.std << YAML::EndMap;
  e << YAML::Key << "batch_per_worker" << YAML::Value << s.batch_per_worker;
  e << YAML::Key << "epochs" << YAML::Value << s.epochs;
  e << YAML::Key << "max_steps" << YAML::Value << s.max_steps;
  e << YAML::Key << "optimizer" << YAML::Value << YAML::BeginMap
    << YAML::Key << "name" << YAML::Value << s.optimizer.name
    << YAML::Key << "momentum" << YAML::Value << s.optimizer.momentum
    << YAML::Key << "weight_decay" << YAML::Value << s.optimizer.weight_decay
    << YAML::Key << "lars_eta" << YAML::Value << s.optimizer.lars_eta
    << YAML::Key << "lars_epsilon" << YAML::Value << s.optimizer.lars_epsilon
    << YAML::Key << "nesterov" << YAML::Value << s.optimizer.nesterov << YAML::EndMap;
  e << YAML::Key << "schedule" << YAML::Value << YAML::BeginMap
    << YAML::Key << "base_lr" << YAML::Value << s.schedule.base_lr
    << YAML::Key << "warmup_epochs" << YAML::Value << s.schedule.warmup_epochs
    << YAML::Key << "decay" << YAML::Value << s.schedule.decay
    << YAML::Key << "poly_power" << YAML::Value << s.schedule.poly_power
    << YAML::Key << "end_lr" << YAML::Value << s.schedule.end_lr
    << YAML::Key << "step_epochs" << YAML::Value << YAML::Flow << s.schedule.step_epochs
    << YAML::Key << "step_gamma" << YAML::Value << s.schedule.step_gamma << YAML::EndMap;
  e << YAML::Key << "label_smoothing" << YAML::Value << s.label_smoothing;
  e << YAML::Key << "precision" << YAML::Value << s.precision;
  e << YAML::Key << "allreduce" << YAML::Value << YAML::BeginMap
    << YAML::Key << "backend" << YAML::Value << s.allreduce.backend
    << YAML::Key << "dtype" << YAML::Value << s.allreduce.dtype
    << YAML::Key << "algorithm" << YAML::Value << s.allreduce.algorithm
    << YAML::Key << "bucket_mb" << YAML::Value << s.allreduce.bucket_mb
    << YAML::Key << "timeout_seconds" << YAML::Value << s.allreduce.timeout_seconds << YAML::EndMap;
  e << YAML::Key << "eval_every_epochs" << YAML::Value << s.eval_every_epochs;
  e << YAML::Key << "target_accuracy" << YAML::Value << s.target_accuracy;
  e << YAML::Key << "bn_momentum" << YAML::Value << s.bn_momentum;
  e << YAML::Key << "bn_epsilon" << YAML::Value << s.bn_epsilon;
  e << YAML::Key << "bn_recalibration_batches" << YAML::Value << s.bn_recalibration_batches;
  e << YAML::Key << "zero_init_residual" << YAML::Value << s.zero_init_residual;
  e << YAML::Key << "batch_norm" << YAML::Value << s.batch_norm;
  e << YAML::Key << "augment" << YAML::Value << YAML::BeginMap
    << YAML::Key << "crop" << YAML::Value << s.augment.crop
    << YAML::Key << "crop_padding" << YAML::Value << s.augment.crop_padding
    << YAML::Key << "flip" << YAML::Value << s.augment.flip
    << YAML::Key << "scale_min" << YAML::Value << s.augment.scale_min
    << YAML::Key << "scale_max" << YAML::Value << s.augment.scale_max
    << YAML::Key << "ratio_min" << YAML::Value << s.augment.ratio_min
    << YAML::Key << "ratio_max" << YAML::Value << s.augment.ratio_max
    << YAML::Key << "eval_resize" << YAML::Value << s.augment.eval_resize
    << YAML::Key << "dct_scaling" << YAML::Value << s.augment.dct_scaling << YAML::EndMap;
  e << YAML::Key << "device" << YAML::Value << s.device;
  e << YAML::Key << "bench" << YAML::Value << YAML::BeginMap
    << YAML::Key << "min_bytes" << YAML::Value << s.bench.min_bytes
    << YAML::Key << "max_bytes" << YAML::Value << s.bench.max_bytes
    << YAML::Key << "iterations" << YAML::Value << s.bench.iterations
    << YAML::Key << "warmup" << YAML::Value << s.bench.warmup << YAML::EndMap;
  e << YAML::Key << "checkpoint" << YAML::Value << YAML::BeginMap
    << YAML::Key << "dir" << YAML::Value << s.checkpoint.dir
    << YAML::Key << "every_steps" << YAML::Value << s.checkpoint.every_steps
    << YAML::Key << "every_epochs" << YAML::Value << s.checkpoint.every_epochs
    << YAML::Key << "keep" << YAML::Value << s.checkpoint.keep << YAML::EndMap;
  e << YAML::Key << "tensorboard" << YAML::Value << YAML::BeginMap
    << YAML::Key << "every_steps" << YAML::Value << s.tensorboard.every_steps << YAML::EndMap;
  e << YAML::Key << "init_from" << YAML::Value << s.init_from;
  e << YAML::Key << "init_from_skip" << YAML::Value << YAML::Flow << s.init_from_skip;
  e << YAML::Key << "max_restarts" << YAML::Value << s.max_restarts;
  e << YAML::Key << "elastic" << YAML::Value << s.elastic;
  e << YAML::Key << "min_workers" << YAML::Value << s.min_workers;
  e << YAML::Key << "elastic_wait_seconds" << YAML::Value << s.elastic_wait_seconds;
  e << YAML::Key << "queue_timeout_seconds" << YAML::Value << s.queue_timeout_seconds;
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

}  // namespace dtrain
