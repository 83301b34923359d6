// ImageRecords: an image data set as N encoded records (JPEG/PNG bytes) with
// int32 labels in [0, classes), read one record at a time by index, from any
// thread. Never loaded whole: opening reads only the listing or the indexes.
//
//  * OpenImageFolder(dir): torchvision's ImageFolder layout, dir/<class>/<file>;
//    classes are the sub-folders sorted by name (byte order, as Python's
//    sorted()), label = position; files with an image extension (.jpg .jpeg
//    .png .ppm .bmp .pgm .tif .tiff .webp, any case) sorted by name within a
//    class, record order = (class, name). Errors (kNotFound / kInvalidArgument)
//    name the folder: missing, no class folders, a class folder without images.
//  * OpenShards(dir, split): the dtrain shard format (shard_format.h), files
//    dir/<split>-NNNNN-of-MMMMM.dtshard; records in shard order. Opening checks
//    every shard's header and index (version, counts, the index checksum);
//    Read() checks the record's CRC32C and fails with kDataLoss naming the
//    shard file and byte offset — never a silent wrong label.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dtrain::data {

class ImageRecords {
 public:
  virtual ~ImageRecords() = default;
  virtual int64_t size() const = 0;
  int classes() const { return static_cast<int>(class_names().size()); }
  virtual const std::vector<std::string>& class_names() const = 0;
  virtual int32_t label(int64_t i) const = 0;
  // Record i's encoded bytes into *out (resized). Thread-safe. Errors:
  // kDataLoss (checksum, short read: names file and offset), kNotFound.
  virtual void Read(int64_t i, std::vector<uint8_t>* out) const = 0;
  // Where record i lives, for messages: a path, or "shard-file@offset".
  virtual std::string Describe(int64_t i) const = 0;
};

std::unique_ptr<ImageRecords> OpenImageFolder(const std::string& dir);
std::unique_ptr<ImageRecords> OpenShards(const std::string& dir, const std::string& split);

}  // namespace dtrain::data
