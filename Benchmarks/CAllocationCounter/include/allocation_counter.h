#ifndef INVERTNN_ALLOCATION_COUNTER_H
#define INVERTNN_ALLOCATION_COUNTER_H
/* Counts the heap allocations made by the calling thread between
   invertnn_allocation_count_begin() and invertnn_allocation_count_end(). The executable that links
   this target interposes malloc, calloc, realloc, aligned_alloc, posix_memalign and memalign:
   each wrapper bumps thread-local counters while counting is on and forwards to glibc's
   __libc_* entry points, so nothing else changes. Used by the benchmark to check that a
   training step allocates nothing after its first call. */
#include <stddef.h>
void invertnn_allocation_count_begin(void);
/* Stops counting; returns the number of allocation calls and stores their total size in bytes. */
long invertnn_allocation_count_end(size_t *bytes);
#endif
