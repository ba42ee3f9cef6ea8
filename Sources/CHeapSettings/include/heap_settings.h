#ifndef INVERTNN_HEAP_SETTINGS_H
#define INVERTNN_HEAP_SETTINGS_H
/* glibc's process-wide allocator settings, for the executables (invertnn train, invertnn-bench).
   Not in the library: a library must not change its host process's allocator. */

/* Raises M_MMAP_THRESHOLD to its maximum (32 MiB on 64-bit) and M_TRIM_THRESHOLD to 1 GiB
   (mallopt), so that buffers a step frees stay in the heap for the next step instead of being
   unmapped and faulted back in. Returns 1 if glibc accepted both settings. */
int invertnn_keep_freed_memory_for_reuse(void);

/* Returns the heap's free memory to the kernel now (malloc_trim(0)), before measuring resident
   memory: freed blocks otherwise stay resident until the top of the heap is free. Returns 1 if
   some memory was returned. */
int invertnn_return_free_memory(void);
#endif
