#include "worker/data/pipeline.h"

#include <filesystem>

#include "common/error.h"
#include "worker/data/dataset.h"
#include "worker/data/image_stream.h"

namespace dtrain::data {
namespace {

// Fashion-MNIST and synthetic: loaded whole.
class MemorySource final : public DataSource {
 public:
  MemorySource(TrainTest sets, const std::string& name)
      : train_(std::make_shared<const Dataset>(std::move(sets.train))),
        test_(std::make_shared<const Dataset>(std::move(sets.test))) {
    if (train_->height != train_->width) Fail(ErrorCode::kInvalidArgument, "the data set's images are not square");
    info_.channels = train_->channels;
    info_.image_size = train_->height;
    info_.classes = train_->classes;
    info_.train_size = train_->size;
    info_.test_size = test_->size;
    info_.description = name + " in memory (" + std::to_string(train_->size) + " train / " +
                        std::to_string(test_->size) + " test images)";
  }
  const DataInfo& info() const override { return info_; }
  std::unique_ptr<TrainStream> Train(const LoaderOptions& o) override {
    return std::make_unique<BatchLoader>(train_, o);
  }
  std::unique_ptr<EvalStream> Eval(int world, int rank, int batch) override {
    return std::make_unique<EvalIterator>(test_, world, rank, batch);
  }

 private:
  std::shared_ptr<const Dataset> train_, test_;
  DataInfo info_;
};

// dataset.train_limit / test_limit on records: `limit` records evenly spaced
// over the set (record j is inner record floor(j·N/limit)), since the records
// are in class order and the first `limit` would hold only the first classes.
class LimitedRecords final : public ImageRecords {
 public:
  LimitedRecords(std::unique_ptr<ImageRecords> inner, int64_t limit)
      : inner_(std::move(inner)), n_(limit > 0 ? std::min(limit, inner_->size()) : inner_->size()) {}
  int64_t size() const override { return n_; }
  const std::vector<std::string>& class_names() const override { return inner_->class_names(); }
  int32_t label(int64_t i) const override { return inner_->label(Map(i)); }
  void Read(int64_t i, std::vector<uint8_t>* out) const override { inner_->Read(Map(i), out); }
  std::string Describe(int64_t i) const override { return inner_->Describe(Map(i)); }

 private:
  int64_t Map(int64_t i) const {
    return n_ == inner_->size() ? i : static_cast<int64_t>((static_cast<__int128>(i) * inner_->size()) / n_);
  }
  std::unique_ptr<ImageRecords> inner_;
  int64_t n_;
};

std::vector<float> Floats(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

}  // namespace

std::unique_ptr<DataSource> OpenDataSource(const DatasetSpec& spec, const AugmentSpec& augment, uint64_t seed,
                                           int threads) {
  if (!IsRecordDataset(spec.name)) return std::make_unique<MemorySource>(LoadDataset(spec, seed), spec.name);
  if (threads < 1) Fail(ErrorCode::kInvalidArgument, "data threads: " + std::to_string(threads) + " (>= 1)");
  std::unique_ptr<ImageRecords> train, test;
  if (spec.name == "imagenet-folder") {
    const std::filesystem::path root(spec.path);
    if (!std::filesystem::is_directory(root))
      Fail(ErrorCode::kNotFound, "dataset.path '" + spec.path +
                                     "' is not a folder; imagenet-folder expects PATH/train/<class>/*.JPEG and "
                                     "PATH/val/<class>/*.JPEG");
    train = OpenImageFolder((root / "train").string());
    test = OpenImageFolder((root / "val").string());
  } else {
    train = OpenShards(spec.path, "train");
    test = OpenShards(spec.path, "val");
  }
  RecordSourceOptions o;
  o.image.augment = augment;
  o.image.image_size = spec.image_size;
  o.image.color = spec.color == "grey" ? ColorMode::kGrey : ColorMode::kRgb;
  o.image.seed = seed;
  const bool grey = o.image.color == ColorMode::kGrey;
  o.mean = !spec.mean.empty() ? Floats(spec.mean)
           : grey             ? std::vector<float>{0.449f}
                              : std::vector<float>{0.485f, 0.456f, 0.406f};
  o.std = !spec.std.empty() ? Floats(spec.std)
          : grey            ? std::vector<float>{0.226f}
                            : std::vector<float>{0.229f, 0.224f, 0.225f};
  o.threads = threads;
  o.description = spec.name + " " + spec.path;
  return MakeRecordSource(std::make_shared<LimitedRecords>(std::move(train), spec.train_limit),
                          std::make_shared<LimitedRecords>(std::move(test), spec.test_limit), o);
}

}  // namespace dtrain::data
