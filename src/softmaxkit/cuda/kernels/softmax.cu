// softmax, log_softmax and logsumexp over the last axis of a contiguous (rows, n) array.
//
// Template parameters, the same for every kernel of softmaxkit:
//   T    storage type (sk_half, sk_bfloat16, float, double); arithmetic in sk_acc<T>
//   TPR  threads per row: <= 32 is a (sub-)warp per row, == BLOCK a block per row
//   BLOCK threads per block
//   VEC  elements per packet (16 bytes / sizeof(T) when aligned, else 1)
//   NV   packets per thread: a register-resident row holds up to TPR*VEC*NV elements
// The *_rows kernels keep a whole row in registers (one read, one write); sk_softmax_smem keeps
// it in shared memory; the *_split_* kernels cut long rows into chunks of BLOCK*VEC*NV elements,
// several blocks per row, and read the row twice.
#include "common.cuh"

template <typename T, int TPR, int BLOCK, int VEC, int NV>
__global__ void __launch_bounds__(BLOCK, 1)
sk_softmax_rows(const T* __restrict__ x, const sk_u8* __restrict__ mask, T* __restrict__ y,
                sk_i64 rows, sk_i64 n, typename sk_acc<T>::type temperature, int log_out) {
    typedef typename sk_acc<T>::type A;
    constexpr int K = VEC * NV;
    __shared__ A smem[32];
    const int lane = threadIdx.x % TPR;
    const sk_i64 row = static_cast<sk_i64>(blockIdx.x) * (BLOCK / TPR) + threadIdx.x / TPR;
    const bool live = row < rows;
    const sk_i64 offset = live ? row * n : 0;
    A v[K];
    sk_load_tile<T, TPR, VEC, NV>(x + offset, mask == nullptr ? nullptr : mask + offset, n, lane, live,
                                  -sk_inf(A(0)), v);
    const A row_max = sk_tile_max<TPR, BLOCK>(v, smem);
    A at_max, rest;
    sk_tile_sums<TPR, BLOCK>(v, row_max, temperature, log_out != 0, at_max, rest, smem);
    A total = at_max + rest;
    total = total == A(0) ? A(1) : total;
    if (log_out) {
        const A log_total = sk_log(total);
#pragma unroll
        for (int k = 0; k < K; ++k) v[k] = v[k] - log_total;
    } else {
#pragma unroll
        for (int k = 0; k < K; ++k) v[k] = v[k] / total;
    }
    sk_store_tile<T, TPR, VEC, NV>(y + offset, n, lane, live, v);
}

template <typename T, int TPR, int BLOCK, int VEC, int NV>
__global__ void __launch_bounds__(BLOCK, 1)
sk_logsumexp_rows(const T* __restrict__ x, const sk_u8* __restrict__ mask, T* __restrict__ out,
                  sk_i64 rows, sk_i64 n) {
    typedef typename sk_acc<T>::type A;
    constexpr int K = VEC * NV;
    __shared__ A smem[32];
    const int lane = threadIdx.x % TPR;
    const sk_i64 row = static_cast<sk_i64>(blockIdx.x) * (BLOCK / TPR) + threadIdx.x / TPR;
    const bool live = row < rows;
    const sk_i64 offset = live ? row * n : 0;
    A v[K];
    sk_load_tile<T, TPR, VEC, NV>(x + offset, mask == nullptr ? nullptr : mask + offset, n, lane, live,
                                  -sk_inf(A(0)), v);
    sk_stats<A> st;
    st.max = sk_tile_max<TPR, BLOCK>(v, smem);
    sk_tile_sums<TPR, BLOCK>(v, st.max, A(1), false, st.at_max, st.rest, smem);
    if (live && lane == 0) out[row] = sk_from_acc<T>(st.logsumexp());
}

// Block per row with the row cached in shared memory (n * sizeof(T) dynamic bytes): one read
// and one write of global memory for rows too long for registers. Chunk statistics merge as in
// the split kernels. Each thread reads back only the packets it wrote, so no barrier is needed
// between caching a chunk and reading it again.
template <typename T, int TPR, int BLOCK, int VEC, int NV>
__global__ void __launch_bounds__(BLOCK, 1)
sk_softmax_smem(const T* __restrict__ x, const sk_u8* __restrict__ mask, T* __restrict__ y, sk_i64 rows,
                sk_i64 n, typename sk_acc<T>::type temperature, int log_out) {
    typedef typename sk_acc<T>::type A;
    constexpr int K = VEC * NV;
    constexpr sk_i64 CHUNK = static_cast<sk_i64>(BLOCK) * K;
    SK_DYNAMIC_SHARED(unsigned char, sk_row_cache);
    T* cache = reinterpret_cast<T*>(sk_row_cache);
    __shared__ A smem[32];
    const sk_i64 row = blockIdx.x;
    sk_stats<A> st;
    st.max = -sk_inf(A(0));
    st.at_max = A(0);
    st.rest = A(0);
    for (sk_i64 q = 0; q * CHUNK < n; ++q) {
        const sk_i64 start = row * n + q * CHUNK;
        A v[K];
        sk_load_tile<T, TPR, VEC, NV>(x + start, mask == nullptr ? nullptr : mask + start, n - q * CHUNK,
                                      threadIdx.x, true, -sk_inf(A(0)), v);
        sk_store_tile<T, TPR, VEC, NV>(cache + q * CHUNK, n - q * CHUNK, threadIdx.x, true, v);
        const A m = sk_tile_max<TPR, BLOCK>(v, smem);
        A c, r;
        sk_tile_sums<TPR, BLOCK>(v, m, temperature, true, c, r, smem);
        st.merge(m, c, r, temperature);
    }
    const sk_shift<A> shift(st.max);
    const A total = st.total();
    const A log_total = sk_log(total);
    for (sk_i64 q = 0; q * CHUNK < n; ++q) {
        A v[K];
        sk_load_tile<T, TPR, VEC, NV>(cache + q * CHUNK, nullptr, n - q * CHUNK, threadIdx.x, true,
                                      -sk_inf(A(0)), v);
#pragma unroll
        for (int k = 0; k < K; ++k) {
            const A z = shift.z(v[k], temperature);
            v[k] = log_out ? z - log_total : sk_exp(z) / total;
        }
        sk_store_tile<T, TPR, VEC, NV>(y + row * n + q * CHUNK, n - q * CHUNK, threadIdx.x, true, v);
    }
}

// Split rows, pass 1: block `split` of row `row` reduces chunks [split*cps, (split+1)*cps) to
// one (max, count at max, rest) partial, stored at partials[3 * (row * splits + split)].
template <typename T, int TPR, int BLOCK, int VEC, int NV>
__global__ void __launch_bounds__(BLOCK, 1)
sk_softmax_split_stats(const T* __restrict__ x, const sk_u8* __restrict__ mask,
                       typename sk_acc<T>::type* __restrict__ partials, sk_i64 rows, sk_i64 n,
                       int splits, sk_i64 chunks_per_split, typename sk_acc<T>::type temperature) {
    typedef typename sk_acc<T>::type A;
    constexpr int K = VEC * NV;
    constexpr sk_i64 CHUNK = static_cast<sk_i64>(BLOCK) * K;
    __shared__ A smem[32];
    const sk_i64 row = blockIdx.x / splits;
    const int split = blockIdx.x % splits;
    sk_stats<A> st;
    st.max = -sk_inf(A(0));
    st.at_max = A(0);
    st.rest = A(0);
    const sk_i64 first = split * chunks_per_split;
    for (sk_i64 q = first; q < first + chunks_per_split && q * CHUNK < n; ++q) {
        const sk_i64 start = row * n + q * CHUNK;
        A v[K];
        sk_load_tile<T, TPR, VEC, NV>(x + start, mask == nullptr ? nullptr : mask + start, n - q * CHUNK,
                                      threadIdx.x, true, -sk_inf(A(0)), v);
        const A m = sk_tile_max<TPR, BLOCK>(v, smem);
        A c, r;
        sk_tile_sums<TPR, BLOCK>(v, m, temperature, true, c, r, smem);
        st.merge(m, c, r, temperature);
    }
    if (threadIdx.x == 0) {
        A* p = partials + 3 * (row * splits + split);
        p[0] = st.max;
        p[1] = st.at_max;
        p[2] = st.rest;
    }
}

// Split rows, pass 2: every block merges its row's partials, then writes its chunks.
template <typename T, int TPR, int BLOCK, int VEC, int NV>
__global__ void __launch_bounds__(BLOCK, 1)
sk_softmax_split_apply(const T* __restrict__ x, const sk_u8* __restrict__ mask,
                       const typename sk_acc<T>::type* __restrict__ partials, T* __restrict__ y,
                       sk_i64 rows, sk_i64 n, int splits, sk_i64 chunks_per_split,
                       typename sk_acc<T>::type temperature, int log_out) {
    typedef typename sk_acc<T>::type A;
    constexpr int K = VEC * NV;
    constexpr sk_i64 CHUNK = static_cast<sk_i64>(BLOCK) * K;
    __shared__ A row_max_total[2];
    const sk_i64 row = blockIdx.x / splits;
    const int split = blockIdx.x % splits;
    if (threadIdx.x < 32) {  // warp 0 merges the row's partials
        const sk_stats<A> st = sk_merge_row(partials, row, splits, 3, temperature, threadIdx.x);
        if (threadIdx.x == 0) {
            row_max_total[0] = st.max;
            row_max_total[1] = st.total();
        }
    }
    __syncthreads();
    const sk_shift<A> shift(row_max_total[0]);
    const A total = row_max_total[1];
    const A log_total = sk_log(total);
    const sk_i64 first = split * chunks_per_split;
    for (sk_i64 q = first; q < first + chunks_per_split && q * CHUNK < n; ++q) {
        const sk_i64 start = row * n + q * CHUNK;
        A v[K];
        sk_load_tile<T, TPR, VEC, NV>(x + start, mask == nullptr ? nullptr : mask + start, n - q * CHUNK,
                                      threadIdx.x, true, -sk_inf(A(0)), v);
#pragma unroll
        for (int k = 0; k < K; ++k) {
            const A z = shift.z(v[k], temperature);
            v[k] = log_out ? z - log_total : sk_exp(z) / total;
        }
        sk_store_tile<T, TPR, VEC, NV>(y + start, n - q * CHUNK, threadIdx.x, true, v);
    }
}

// Split rows, logsumexp: one warp per row merges the partials (FINISH_BLOCK / 32 rows a block).
template <typename T>
__global__ void __launch_bounds__(128)
sk_logsumexp_split_finish(const typename sk_acc<T>::type* __restrict__ partials, T* __restrict__ out,
                          sk_i64 rows, int splits) {
    typedef typename sk_acc<T>::type A;
    const int lane = threadIdx.x % 32;
    const sk_i64 row = static_cast<sk_i64>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= rows) return;  // whole warps leave: rows are warp-uniform
    const A lse = sk_merge_row(partials, row, splits, 3, A(1), lane).logsumexp();
    if (lane == 0) out[row] = sk_from_acc<T>(lse);
}
