// Host layout converters between the CPU engine's (and PyTorch's) layouts and
// the CUDA engine's, for checkpoints, export and parity tests:
//   conv weights KCRS [k][c][r][s]  <->  KRSC [k][r][s][c_pad]
//   activations  NCHW [n][c][h][w]  <->  NHWC [n][h][w][c_pad]
// c_pad >= c: the device pads channels (zeros) so every pixel starts on a
// 16-byte boundary; converting back drops the padding. out must not alias in.
// Shapes must be positive and c_pad >= c, else Error(kInvalidArgument).
#pragma once

namespace dtrain::cpu {

template <typename T>
void KcrsToKrsc(const T* in, int k, int c, int r, int s, int c_pad, T* out);
template <typename T>
void KrscToKcrs(const T* in, int k, int c, int r, int s, int c_pad, T* out);
template <typename T>
void NchwToNhwc(const T* in, int n, int c, int h, int w, int c_pad, T* out);
template <typename T>
void NhwcToNchw(const T* in, int n, int c, int h, int w, int c_pad, T* out);

}  // namespace dtrain::cpu
