#ifndef INVERTNN_CZLIB_SHIM_H
#define INVERTNN_CZLIB_SHIM_H
#include <zlib.h>
#endif
