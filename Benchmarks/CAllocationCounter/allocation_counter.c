#define _GNU_SOURCE
#include "allocation_counter.h"
#include <errno.h>
#include <stdlib.h>

/* glibc's own allocator entry points (exported by libc.so.6). */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static _Thread_local int counting;
static _Thread_local long calls;
static _Thread_local size_t total;

static inline void note(size_t size) {
    if (counting) { calls += 1; total += size; }
}

void invertnn_allocation_count_begin(void) { calls = 0; total = 0; counting = 1; }

long invertnn_allocation_count_end(size_t *bytes) {
    counting = 0;
    if (bytes) *bytes = total;
    return calls;
}

void *malloc(size_t size) { note(size); return __libc_malloc(size); }
void *calloc(size_t count, size_t size) { note(count * size); return __libc_calloc(count, size); }
void *realloc(void *p, size_t size) { note(size); return __libc_realloc(p, size); }
void *memalign(size_t alignment, size_t size) { note(size); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { note(size); return __libc_memalign(alignment, size); }
int posix_memalign(void **out, size_t alignment, size_t size) {
    note(size);
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    void *p = __libc_memalign(alignment, size);
    if (!p && size) return ENOMEM;
    *out = p;
    return 0;
}
