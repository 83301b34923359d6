// Row-major GEMM over CBLAS, templated on float/double:
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
// lda/ldb/ldc are the row strides of A, B, C as stored. Thread count is the
// caller's business (openblas_set_num_threads); nothing here sets it.
#pragma once

#include <cblas.h>

namespace dtrain::cpu {

inline void Gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                 const float* a, int lda, const float* b, int ldb, float beta,
                 float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b,
              ldb, beta, c, ldc);
}

inline void Gemm(bool trans_a, bool trans_b, int m, int n, int k, double alpha,
                 const double* a, int lda, const double* b, int ldb,
                 double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b,
              ldb, beta, c, ldc);
}

}  // namespace dtrain::cpu
