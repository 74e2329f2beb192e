/* nn/cuda_multi_tensor.cuh: private to nn/'s .cu files: the device side of a multi-tensor
 * table (cuda_ops.h): each tensor cut into chunks of at most MT_CHUNK elements, one block per
 * chunk, so a launch covers every parameter however their sizes differ. */
#ifndef TAL_CUDA_MULTI_TENSOR_CUH
#define TAL_CUDA_MULTI_TENSOR_CUH

#include "cuda_common.cuh"

#define MT_CHUNK 16384
#define MT_BLOCK 256

typedef struct mt_chunk {
    int64_t start;
    int32_t entry, len;
} mt_chunk;

struct cuda_mt_table {
    int n_entries;
    int64_t n_chunks;
    tal_mt_entry *host;     /* the entries as given (to check they still hold) */
    tal_mt_entry *entries;  /* device copies */
    mt_chunk *chunks;
};

/* The launch over a table: one block per chunk (none when the table is empty). */
static inline unsigned mt_blocks(const cuda_mt_table *t) { return (unsigned)t->n_chunks; }

#endif /* TAL_CUDA_MULTI_TENSOR_CUH */
