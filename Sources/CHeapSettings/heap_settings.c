#include "heap_settings.h"
#include <malloc.h>

int invertnn_keep_freed_memory_for_reuse(void) {
    int mmap = mallopt(M_MMAP_THRESHOLD, 32 << 20);
    int trim = mallopt(M_TRIM_THRESHOLD, 1 << 30);
    return mmap == 1 && trim == 1;
}

int invertnn_return_free_memory(void) { return malloc_trim(0) == 1; }
