#include "worker/data/image_augment.h"

#include <cstring>
#include <vector>

#include "worker/data/augment.h"
#include "worker/data/random.h"

namespace dtrain::data {
namespace {

constexpr uint64_t kResizedCropTag = 0x5252'4352'4f50'3031ull;

BoxF Whole(int width, int height) { return BoxF{0, 0, double(width), double(height)}; }

// The decoded image at image_size × image_size (resampled if it has another size).
std::vector<uint8_t> DecodeSquare(const uint8_t* bytes, size_t size, const ImageAugmentOptions& o,
                                  DecodeScratch* scratch) {
  ImageInfo info;
  std::vector<uint8_t> full = DecodeFull(bytes, size, o.color, &info);
  const int s = o.image_size;
  if (info.width == s && info.height == s) return full;
  std::vector<uint8_t> out(size_t(s) * s * o.channels());
  ResampleBilinear(full.data(), info.width, info.height, o.channels(), Whole(info.width, info.height), s, s, false,
                   out.data(), scratch);
  return out;
}

}  // namespace

ResizedCrop DrawResizedCrop(const ImageAugmentOptions& o, int width, int height, int64_t epoch, int64_t index) {
  Rng rng(Hash(o.seed, kResizedCropTag, static_cast<uint64_t>(epoch), static_cast<uint64_t>(index)));
  const RrcParams p{o.augment.scale_min, o.augment.scale_max, o.augment.ratio_min, o.augment.ratio_max};
  ResizedCrop c;
  c.box = RandomResizedCropBox(width, height, p, [&rng] { return rng.Uniform(); });
  c.flip = o.augment.flip && (rng.Next() >> 63) != 0;
  return c;
}

void AugmentTrainImage(const uint8_t* bytes, size_t size, const ImageAugmentOptions& o, int64_t epoch, int64_t index,
                       uint8_t* out, DecodeScratch* scratch) {
  if (o.augment.crop == "random-resized") {
    const ImageInfo info = ReadImageInfo(bytes, size);
    const ResizedCrop c = DrawResizedCrop(o, info.width, info.height, epoch, index);
    const BoxF box = CropBoxF(c.box);  // torchvision: crop, then resize
    DecodeCropResize(bytes, size, box, o.image_size, o.image_size, c.flip, o.color, o.augment.dct_scaling, out,
                     scratch);
    return;
  }
  // pad: the in-memory sets' crop and flip, on HWC uint8.
  const std::vector<uint8_t> img = DecodeSquare(bytes, size, o, scratch);
  const CropFlip cf = DrawCropFlip(o.augment, o.seed, epoch, index);
  const int s = o.image_size, ch = o.channels();
  const int p = o.augment.crop_padding > 0 ? o.augment.crop_padding : 0;
  for (int y = 0; y < s; ++y) {
    const int sy = y + cf.dy - p;
    for (int x = 0; x < s; ++x) {
      const int ox = cf.flip ? s - 1 - x : x;
      const int sx = ox + cf.dx - p;
      uint8_t* dst = out + (size_t(y) * s + x) * ch;
      if (sy >= 0 && sy < s && sx >= 0 && sx < s) {
        std::memcpy(dst, img.data() + (size_t(sy) * s + sx) * ch, ch);
      } else {
        std::memset(dst, 0, ch);
      }
    }
  }
}

void TransformEvalImage(const uint8_t* bytes, size_t size, const ImageAugmentOptions& o, uint8_t* out,
                        DecodeScratch* scratch) {
  if (o.augment.crop == "random-resized") {
    const ImageInfo info = ReadImageInfo(bytes, size);
    const BoxF box = EvalBox(info.width, info.height, o.augment.eval_resize, o.image_size);
    DecodeCropResize(bytes, size, box, o.image_size, o.image_size, false, o.color, o.augment.dct_scaling, out, scratch);
    return;
  }
  const std::vector<uint8_t> img = DecodeSquare(bytes, size, o, scratch);
  std::memcpy(out, img.data(), img.size());
}

}  // namespace dtrain::data
