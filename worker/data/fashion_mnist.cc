// LoadFashionMnist (declared in dataset.h): the four IDX files of Fashion-MNIST.
#include <sys/stat.h>

#include <algorithm>

#include "common/error.h"
#include "worker/data/dataset.h"
#include "worker/data/idx_reader.h"

namespace dtrain::data {
namespace {

constexpr int kClasses = 10;

// "<dir>/<stem>.gz" if present, else "<dir>/<stem>"; kNotFound if neither.
std::string FindFile(const std::string& dir, const std::string& stem) {
  struct stat st;
  for (const std::string& name : {dir + "/" + stem + ".gz", dir + "/" + stem})
    if (::stat(name.c_str(), &st) == 0) return name;
  Fail(ErrorCode::kNotFound, "fashion-mnist: neither " + dir + "/" + stem + ".gz nor " + dir + "/" + stem +
                                 " exists (install the dataset-fashion-mnist package or set dataset.path)");
}

Dataset LoadSplit(const std::string& dir, const std::string& prefix, int64_t limit) {
  const std::string image_path = FindFile(dir, prefix + "-images-idx3-ubyte");
  const std::string label_path = FindFile(dir, prefix + "-labels-idx1-ubyte");
  IdxArray images = ReadIdx(image_path, 3);
  IdxArray labels = ReadIdx(label_path, 1);
  if (images.dims[0] != labels.dims[0])
    Fail(ErrorCode::kDataLoss, image_path + " holds " + std::to_string(images.dims[0]) + " images but " +
                                   label_path + " holds " + std::to_string(labels.dims[0]) +
                                   " labels: expected equal counts");
  for (size_t i = 0; i < labels.data.size(); ++i)
    if (labels.data[i] >= kClasses)
      Fail(ErrorCode::kDataLoss, label_path + ": label " + std::to_string(labels.data[i]) + " of image " +
                                     std::to_string(i) + " at offset " + std::to_string(8 + i) +
                                     " of the decompressed stream: expected a class below " +
                                     std::to_string(kClasses));
  Dataset set;
  set.size = limit > 0 ? std::min(limit, images.dims[0]) : images.dims[0];
  set.channels = 1;
  set.height = static_cast<int>(images.dims[1]);
  set.width = static_cast<int>(images.dims[2]);
  set.classes = kClasses;
  images.data.resize(set.size * set.image_bytes());
  set.images = std::move(images.data);
  set.labels.assign(labels.data.begin(), labels.data.begin() + set.size);
  return set;
}

}  // namespace

TrainTest LoadFashionMnist(const std::string& dir, int64_t train_limit, int64_t test_limit) {
  if (train_limit < 0 || test_limit < 0)
    Fail(ErrorCode::kInvalidArgument, "dataset.train_limit/test_limit: must be >= 0 (0: all images)");
  TrainTest out;
  out.train = LoadSplit(dir, "train", train_limit);
  out.test = LoadSplit(dir, "t10k", test_limit);
  ComputeNormalization(out.train);
  out.test.mean = out.train.mean;
  out.test.std = out.train.std;
  return out;
}

}  // namespace dtrain::data
