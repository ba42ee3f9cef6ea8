#ifndef INVERTNN_REFERENCE_GEMM_H
#define INVERTNN_REFERENCE_GEMM_H
/* The benchmark's C reference: the same row-major no-transpose GEMM the Swift wrapper issues,
   called directly from C, so the wrapper's overhead can be measured against it. */
void invertnn_reference_sgemm(int m, int n, int k, const float *a, const float *b, float *c);
void invertnn_reference_dgemm(int m, int n, int k, const double *a, const double *b, double *c);
#endif
