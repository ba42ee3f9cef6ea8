#ifndef INVERTNN_CBLAS_SHIM_H
#define INVERTNN_CBLAS_SHIM_H
#include <cblas.h>
#include <lapacke.h>
#endif
