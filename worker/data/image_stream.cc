#include "worker/data/image_stream.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>
#include <set>
#include <string>

#include "common/error.h"
#include "worker/data/random.h"
#include "worker/data/sampler.h"
#include "worker/data/thread_pool.h"

namespace dtrain::data {
namespace {

constexpr uint64_t kReplaceTag = 0x5245'504c'4143'4531ull;
constexpr int kMaxReplacements = 16;

// Per data thread: the record's bytes and the decoder's buffers.
struct ThreadScratch {
  std::vector<uint8_t> bytes;
  DecodeScratch decode;
};

// Records that failed once; counted and logged once each.
class BadRecords {
 public:
  bool Known(int64_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return bad_.count(i) != 0;
  }
  void Note(const ImageRecords& recs, int64_t i, const std::string& why, const char* split) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!bad_.insert(i).second) return;
    count_.fetch_add(1);
    spdlog::warn("{} record {} ({}) is unusable and is replaced: {}", split, i, recs.Describe(i), why);
  }
  int64_t count() const { return count_.load(); }

 private:
  std::mutex mu_;
  std::set<int64_t> bad_;
  std::atomic<int64_t> count_{0};
};

class RecordSource;

class RecordEval final : public EvalStream {
 public:
  RecordEval(RecordSource* src, int world, int rank, int batch);
  int64_t size() const override { return static_cast<int64_t>(share_.size()); }
  bool Next(Batch* out) override;

 private:
  RecordSource* src_;
  std::vector<int64_t> share_;
  int batch_;
  int64_t pos_ = 0, step_ = 0;
};

class RecordSource final : public DataSource {
 public:
  RecordSource(std::shared_ptr<const ImageRecords> train, std::shared_ptr<const ImageRecords> test,
               const RecordSourceOptions& o)
      : train_(std::move(train)), test_(std::move(test)), o_(o), pool_(o.threads) {
    const int c = o.image.channels();
    if (int(o.mean.size()) != c || int(o.std.size()) != c)
      Fail(ErrorCode::kInvalidArgument, "record data set: mean/std need " + std::to_string(c) + " values");
    if (train_->classes() != test_->classes())
      Fail(ErrorCode::kInvalidArgument, "the training split has " + std::to_string(train_->classes()) +
                                            " classes and the validation split " + std::to_string(test_->classes()) +
                                            ": they must have the same classes");
    for (int k = 0; k < train_->classes(); ++k)
      if (train_->class_names()[k] != test_->class_names()[k])
        Fail(ErrorCode::kInvalidArgument, "class " + std::to_string(k) + " is '" + train_->class_names()[k] +
                                              "' in the training split but '" + test_->class_names()[k] +
                                              "' in the validation split: the splits must have the same classes");
    info_.channels = c;
    info_.image_size = o.image.image_size;
    info_.classes = train_->classes();
    info_.train_size = train_->size();
    info_.test_size = test_->size();
    info_.description = o.description + " (" + std::to_string(info_.train_size) + " train / " +
                        std::to_string(info_.test_size) + " val records, " + std::to_string(info_.classes) +
                        " classes, " + o.image.augment.crop + " crop to " + std::to_string(info_.image_size) + ", " +
                        std::to_string(pool_.threads()) + " data threads)";
  }

  const DataInfo& info() const override { return info_; }
  int64_t bad_records() const override { return bad_train_.count() + bad_test_.count(); }

  std::unique_ptr<TrainStream> Train(const LoaderOptions& options) override {
    return std::make_unique<BatchLoader>(
        train_->size(), options,
        [this](int64_t epoch, const int64_t* idx, int64_t n, Batch* b) { Fill(true, epoch, idx, n, b); });
  }
  std::unique_ptr<EvalStream> Eval(int world, int rank, int batch) override {
    return std::make_unique<RecordEval>(this, world, rank, batch);
  }

  // Decodes records idx[0 .. n) into b (pixels, labels, shape, mean/std).
  void Fill(bool train, int64_t epoch, const int64_t* idx, int64_t n, Batch* b) {
    const int s = info_.image_size, c = info_.channels;
    const size_t image = size_t(s) * s * c;
    b->channels = c;
    b->height = b->width = s;
    b->pixels.resize(size_t(n) * image);
    b->labels.resize(n);
    b->mean = o_.mean;
    b->std = o_.std;
    pool_.ParallelFor(n, [&](int64_t i) {
      thread_local ThreadScratch ts;  // per data thread, reused batch after batch
      Load(train, epoch, idx[i], b->pixels.data() + size_t(i) * image, &b->labels[i], &ts);
    });
  }

 private:
  void Load(bool train, int64_t epoch, int64_t index, uint8_t* out, int32_t* label, ThreadScratch* ts) {
    const ImageRecords& recs = train ? *train_ : *test_;
    BadRecords& bad = train ? bad_train_ : bad_test_;
    const char* split = train ? "training" : "validation";
    const int64_t n = recs.size();
    std::string last;
    for (int k = 0; k <= kMaxReplacements; ++k) {
      const int64_t i = k == 0 ? index : static_cast<int64_t>(Hash(o_.image.seed, kReplaceTag, index, k) % n);
      if (bad.Known(i)) continue;
      try {
        recs.Read(i, &ts->bytes);
        if (train) {
          AugmentTrainImage(ts->bytes.data(), ts->bytes.size(), o_.image, epoch, index, out, &ts->decode);
        } else {
          TransformEvalImage(ts->bytes.data(), ts->bytes.size(), o_.image, out, &ts->decode);
        }
        *label = recs.label(i);
        return;
      } catch (const Error& e) {
        if (e.code() != ErrorCode::kDataLoss && e.code() != ErrorCode::kNotFound) throw;
        bad.Note(recs, i, e.what(), split);
        last = recs.Describe(i) + ": " + e.what();
      }
    }
    Fail(ErrorCode::kDataLoss, std::string("the ") + split + " record " + std::to_string(index) + " and its " +
                                   std::to_string(kMaxReplacements) +
                                   " replacements are all unusable; is the data set damaged? last: " + last);
  }

  friend class RecordEval;
  std::shared_ptr<const ImageRecords> train_, test_;
  RecordSourceOptions o_;
  DataInfo info_;
  ThreadPool pool_;
  BadRecords bad_train_, bad_test_;
};

RecordEval::RecordEval(RecordSource* src, int world, int rank, int batch) : src_(src), batch_(batch) {
  if (batch < 1) Fail(ErrorCode::kInvalidArgument, "evaluation batch " + std::to_string(batch) + " (>= 1)");
  share_ = EvalShare(src->test_->size(), world, rank);
}

bool RecordEval::Next(Batch* out) {
  if (pos_ >= size()) return false;
  const int64_t n = std::min<int64_t>(batch_, size() - pos_);
  *out = Batch{};
  out->step = step_++;
  out->size = n;
  out->indices.assign(share_.begin() + pos_, share_.begin() + pos_ + n);
  src_->Fill(false, 0, out->indices.data(), n, out);
  pos_ += n;
  return true;
}

}  // namespace

std::unique_ptr<DataSource> MakeRecordSource(std::shared_ptr<const ImageRecords> train,
                                             std::shared_ptr<const ImageRecords> test,
                                             const RecordSourceOptions& options) {
  return std::make_unique<RecordSource>(std::move(train), std::move(test), options);
}

}  // namespace dtrain::data
