// im2col / col2im for NCHW convolution over a chunk of images.
// col has CRS = c*r*s rows; row (ci*r + i)*s + j holds, for each image g of the
// chunk and each output pixel p = oy*ow + ox, the input value
// x[g][ci][oy*stride - pad + i][ox*stride - pad + j] (0 outside) at column
// g*ow*oh + p. ld is the row stride of col (>= images*oh*ow).
// Im2Col overwrites col; Col2Im ADDS col back into x (x must be initialised).
#pragma once

namespace dtrain::cpu {

struct Conv2dShape;

template <typename T>
void Im2Col(const Conv2dShape& s, int images, const T* x, T* col, long ld);

template <typename T>
void Col2Im(const Conv2dShape& s, int images, const T* col, long ld, T* x);

}  // namespace dtrain::cpu
