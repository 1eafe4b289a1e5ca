// Vector-Jacobian products of softmax and log_softmax over the last axis of (rows, n) arrays.
//   softmax      (log_kind = 0): out = s * (g - sum(g * s))
//   log_softmax  (log_kind = 1): out = live ? g - exp(logp) * sum(live ? g : 0) : 0,
//                                live = logp != -inf (excluded inputs get 0, SPEC section 2)
// Template parameters as in softmax.cu. One row sum each, so the *_rows kernels hold both
// inputs in registers and the split kernels merge per-block sums in a fixed order.
#include "common.cuh"

template <typename A>
__device__ __forceinline__ A sk_vjp_term(A first, A g, int log_kind) {
    if (log_kind) return first != -sk_inf(first) ? g : A(0);
    return g * first;
}

template <typename A>
__device__ __forceinline__ A sk_vjp_value(A first, A g, A sum, int log_kind) {
    if (log_kind) return first != -sk_inf(first) ? g - sk_exp(first) * sum : A(0);
    return first * (g - sum);
}

template <typename T, int TPR, int BLOCK, int VEC, int NV>
__global__ void __launch_bounds__(BLOCK, 1)
sk_vjp_rows(const T* __restrict__ first, const T* __restrict__ g, T* __restrict__ out, sk_i64 rows,
            sk_i64 n, int log_kind) {
    typedef typename sk_acc<T>::type A;
    constexpr int K = VEC * NV;
    __shared__ A smem[32];
    const int lane = threadIdx.x % TPR;
    const sk_i64 row = static_cast<sk_i64>(blockIdx.x) * (BLOCK / TPR) + threadIdx.x / TPR;
    const bool live = row < rows;
    const sk_i64 offset = live ? row * n : 0;
    // Padding: -inf for logp (not live: adds 0), 0 for s; g padded with 0.
    A f[K], gv[K];
    sk_load_tile<T, TPR, VEC, NV>(first + offset, nullptr, n, lane, live,
                                  log_kind ? -sk_inf(A(0)) : A(0), f);
    sk_load_tile<T, TPR, VEC, NV>(g + offset, nullptr, n, lane, live, A(0), gv);
    A sum = 0;
#pragma unroll
    for (int k = 0; k < K; ++k) sum += sk_vjp_term(f[k], gv[k], log_kind);
    sum = sk_group_reduce<TPR, BLOCK>(sum, sk_sum_op(), smem);
#pragma unroll
    for (int k = 0; k < K; ++k) f[k] = sk_vjp_value(f[k], gv[k], sum, log_kind);
    sk_store_tile<T, TPR, VEC, NV>(out + offset, n, lane, live, f);
}

// Split rows, pass 1: the sum over chunks [split*cps, (split+1)*cps) into partials[row*splits + split].
template <typename T, int TPR, int BLOCK, int VEC, int NV>
__global__ void __launch_bounds__(BLOCK, 1)
sk_vjp_split_sums(const T* __restrict__ first, const T* __restrict__ g,
                  typename sk_acc<T>::type* __restrict__ partials, sk_i64 rows, sk_i64 n, int splits,
                  sk_i64 chunks_per_split, int log_kind) {
    typedef typename sk_acc<T>::type A;
    constexpr int K = VEC * NV;
    constexpr sk_i64 CHUNK = static_cast<sk_i64>(BLOCK) * K;
    __shared__ A smem[32];
    const sk_i64 row = blockIdx.x / splits;
    const int split = blockIdx.x % splits;
    A total = 0;
    const sk_i64 first_chunk = split * chunks_per_split;
    for (sk_i64 q = first_chunk; q < first_chunk + chunks_per_split && q * CHUNK < n; ++q) {
        const sk_i64 start = row * n + q * CHUNK;
        A f[K], gv[K];
        sk_load_tile<T, TPR, VEC, NV>(first + start, nullptr, n - q * CHUNK, threadIdx.x, true,
                                      log_kind ? -sk_inf(A(0)) : A(0), f);
        sk_load_tile<T, TPR, VEC, NV>(g + start, nullptr, n - q * CHUNK, threadIdx.x, true, A(0), gv);
        A sum = 0;
#pragma unroll
        for (int k = 0; k < K; ++k) sum += sk_vjp_term(f[k], gv[k], log_kind);
        total += sk_group_reduce<TPR, BLOCK>(sum, sk_sum_op(), smem);
    }
    if (threadIdx.x == 0) partials[row * splits + split] = total;
}

// Split rows, pass 2: the row's sums added by one warp in a fixed order, then this block's chunks written.
template <typename T, int TPR, int BLOCK, int VEC, int NV>
__global__ void __launch_bounds__(BLOCK, 1)
sk_vjp_split_apply(const T* __restrict__ first, const T* __restrict__ g,
                   const typename sk_acc<T>::type* __restrict__ partials, T* __restrict__ out,
                   sk_i64 rows, sk_i64 n, int splits, sk_i64 chunks_per_split, int log_kind) {
    typedef typename sk_acc<T>::type A;
    constexpr int K = VEC * NV;
    constexpr sk_i64 CHUNK = static_cast<sk_i64>(BLOCK) * K;
    __shared__ A row_sum;
    const sk_i64 row = blockIdx.x / splits;
    const int split = blockIdx.x % splits;
    if (threadIdx.x < 32) {  // warp 0 adds the row's sums
        const A s = sk_warp_sum(partials + row * splits, splits, 1, threadIdx.x);
        if (threadIdx.x == 0) row_sum = s;
    }
    __syncthreads();
    const A sum = row_sum;
    const sk_i64 first_chunk = split * chunks_per_split;
    for (sk_i64 q = first_chunk; q < first_chunk + chunks_per_split && q * CHUNK < n; ++q) {
        const sk_i64 start = row * n + q * CHUNK;
        A f[K], gv[K];
        sk_load_tile<T, TPR, VEC, NV>(first + start, nullptr, n - q * CHUNK, threadIdx.x, true,
                                      log_kind ? -sk_inf(A(0)) : A(0), f);
        sk_load_tile<T, TPR, VEC, NV>(g + start, nullptr, n - q * CHUNK, threadIdx.x, true, A(0), gv);
#pragma unroll
        for (int k = 0; k < K; ++k) f[k] = sk_vjp_value(f[k], gv[k], sum, log_kind);
        sk_store_tile<T, TPR, VEC, NV>(out + start, n - q * CHUNK, threadIdx.x, true, f);
    }
}
