// Cross-entropy of softmax(logits) with its gradient from the same pass (the generic engine's
// formulation, softmaxkit/generic/_loss.py): per class the coefficient a_c = w_c * q_c, q the
// target distribution (one-hot of the label or the given probabilities, mixed with the uniform
// distribution by label smoothing, all 0 for an ignored sample), then
//     loss_row = -sum_c a_c * logp_c          (a_c == 0 adds 0 even where logp_c = -inf)
//     grad_c   = (sum_c a_c) * exp(logp_c) - a_c,  divided by `grad_divisor` (0 when it is <= 0)
// Labels are int64 (labels != nullptr) or probabilities are given (probs, same layout as x).
// Template parameters as in softmax.cu.
#include "common.cuh"

template <typename T> struct sk_ce_target {
    typedef typename sk_acc<T>::type A;
    const sk_i64* __restrict__ labels;
    const T* __restrict__ probs;
    const A* __restrict__ weight;
    A keep, spread;  // 1 - label_smoothing and label_smoothing / n, computed on the host
    int smooth;
    sk_i64 label;
    bool counted;

    __device__ __forceinline__ sk_ce_target(const sk_i64* l, const T* p, const A* w, A keep_, A spread_,
                                            int smooth_, sk_i64 row, bool live, sk_i64 ignore_index,
                                            int has_ignore)
        : labels(l), probs(p), weight(w), keep(keep_), spread(spread_), smooth(smooth_) {
        label = (labels != nullptr && live) ? labels[row] : -1;
        counted = labels == nullptr || !(has_ignore && label == ignore_index);
    }

    // a_c for class c; `p` points at the row's probabilities (when given).
    __device__ __forceinline__ A coefficient(sk_i64 c, const T* __restrict__ p) const {
        A q = labels != nullptr ? A((c == label && counted) ? 1 : 0) : sk_to_acc(p[c]);
        if (smooth) q = keep * q + spread * A(counted ? 1 : 0);
        return weight != nullptr ? q * weight[c] : q;
    }
};

template <typename T, int TPR, int BLOCK, int VEC, int NV>
__global__ void __launch_bounds__(BLOCK, 1)
sk_cross_entropy_rows(const T* __restrict__ x, const sk_i64* __restrict__ labels, const T* __restrict__ probs,
                      const typename sk_acc<T>::type* __restrict__ weight, sk_i64 ignore_index,
                      int has_ignore, typename sk_acc<T>::type keep, typename sk_acc<T>::type spread,
                      int smooth, typename sk_acc<T>::type grad_divisor,
                      typename sk_acc<T>::type* __restrict__ loss_rows, T* __restrict__ grad, sk_i64 rows,
                      sk_i64 n) {
    typedef typename sk_acc<T>::type A;
    constexpr int K = VEC * NV;
    __shared__ A smem[32];
    const int lane = threadIdx.x % TPR;
    const sk_i64 row = static_cast<sk_i64>(blockIdx.x) * (BLOCK / TPR) + threadIdx.x / TPR;
    const bool live = row < rows;
    const sk_i64 offset = live ? row * n : 0;
    const sk_ce_target<T> target(labels, probs, weight, keep, spread, smooth, row, live, ignore_index,
                                 has_ignore);
    const T* row_probs = probs == nullptr ? nullptr : probs + offset;
    A v[K];
    sk_load_tile<T, TPR, VEC, NV>(x + offset, nullptr, n, lane, live, -sk_inf(A(0)), v);
    const A row_max = sk_tile_max<TPR, BLOCK>(v, smem);
    A at_max, rest;
    sk_tile_sums<TPR, BLOCK>(v, row_max, A(1), true, at_max, rest, smem);
    const A total = at_max + rest;
    const A log_total = sk_log(total == A(0) ? A(1) : total);
    A loss = 0, a_sum = 0;
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const sk_i64 c = (static_cast<sk_i64>(k / VEC) * TPR + lane) * VEC + k % VEC;
        v[k] = v[k] - log_total;  // logp
        if (live && c < n) {
            const A a = target.coefficient(c, row_probs);
            loss += a == A(0) ? A(0) : a * v[k];
            a_sum += a;
        }
    }
    loss = sk_group_reduce<TPR, BLOCK>(loss, sk_sum_op(), smem);
    a_sum = sk_group_reduce<TPR, BLOCK>(a_sum, sk_sum_op(), smem);
    if (live && lane == 0) loss_rows[row] = -loss;
    if (grad == nullptr) return;
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const sk_i64 c = (static_cast<sk_i64>(k / VEC) * TPR + lane) * VEC + k % VEC;
        const A a = (live && c < n) ? target.coefficient(c, row_probs) : A(0);
        const A g = a_sum * sk_exp(v[k]) - a;
        v[k] = grad_divisor > A(0) ? g / grad_divisor : A(0);
    }
    sk_store_tile<T, TPR, VEC, NV>(grad + offset, n, lane, live, v);
}

// Split rows, pass 1: (max, count at max, rest, sum of a) of chunks [split*cps, (split+1)*cps)
// into partials[4 * (row * splits + split)].
template <typename T, int TPR, int BLOCK, int VEC, int NV>
__global__ void __launch_bounds__(BLOCK, 1)
sk_cross_entropy_split_stats(const T* __restrict__ x, const sk_i64* __restrict__ labels,
                             const T* __restrict__ probs, const typename sk_acc<T>::type* __restrict__ weight,
                             sk_i64 ignore_index, int has_ignore, typename sk_acc<T>::type keep,
                             typename sk_acc<T>::type spread, int smooth,
                             typename sk_acc<T>::type* __restrict__ partials, sk_i64 rows, sk_i64 n,
                             int splits, sk_i64 chunks_per_split) {
    typedef typename sk_acc<T>::type A;
    constexpr int K = VEC * NV;
    constexpr sk_i64 CHUNK = static_cast<sk_i64>(BLOCK) * K;
    __shared__ A smem[32];
    const sk_i64 row = blockIdx.x / splits;
    const int split = blockIdx.x % splits;
    const sk_ce_target<T> target(labels, probs, weight, keep, spread, smooth, row, true, ignore_index,
                                 has_ignore);
    const T* row_probs = probs == nullptr ? nullptr : probs + row * n;
    sk_stats<A> st;
    st.max = -sk_inf(A(0));
    st.at_max = A(0);
    st.rest = A(0);
    A a_sum = 0;
    const sk_i64 first = split * chunks_per_split;
    for (sk_i64 q = first; q < first + chunks_per_split && q * CHUNK < n; ++q) {
        A v[K];
        sk_load_tile<T, TPR, VEC, NV>(x + row * n + q * CHUNK, nullptr, n - q * CHUNK, threadIdx.x, true,
                                      -sk_inf(A(0)), v);
        const A m = sk_tile_max<TPR, BLOCK>(v, smem);
        A c, r;
        sk_tile_sums<TPR, BLOCK>(v, m, A(1), true, c, r, smem);
        st.merge(m, c, r, A(1));
#pragma unroll
        for (int k = 0; k < K; ++k) {
            const sk_i64 col = q * CHUNK + (static_cast<sk_i64>(k / VEC) * TPR + threadIdx.x) * VEC + k % VEC;
            if (col < n) a_sum += target.coefficient(col, row_probs);
        }
    }
    a_sum = sk_group_reduce<TPR, BLOCK>(a_sum, sk_sum_op(), smem);
    if (threadIdx.x == 0) {
        A* p = partials + 4 * (row * splits + split);
        p[0] = st.max;
        p[1] = st.at_max;
        p[2] = st.rest;
        p[3] = a_sum;
    }
}

// Split rows, pass 2: merge the row's partials, write this block's gradient chunks and its share
// of the row's loss to loss_parts[row * splits + split] (the host adds the shares in order).
template <typename T, int TPR, int BLOCK, int VEC, int NV>
__global__ void __launch_bounds__(BLOCK, 1)
sk_cross_entropy_split_apply(const T* __restrict__ x, const sk_i64* __restrict__ labels,
                             const T* __restrict__ probs, const typename sk_acc<T>::type* __restrict__ weight,
                             sk_i64 ignore_index, int has_ignore, typename sk_acc<T>::type keep,
                             typename sk_acc<T>::type spread, int smooth, typename sk_acc<T>::type grad_divisor,
                             const typename sk_acc<T>::type* __restrict__ partials,
                             typename sk_acc<T>::type* __restrict__ loss_parts, T* __restrict__ grad,
                             sk_i64 rows, sk_i64 n, int splits, sk_i64 chunks_per_split) {
    typedef typename sk_acc<T>::type A;
    constexpr int K = VEC * NV;
    constexpr sk_i64 CHUNK = static_cast<sk_i64>(BLOCK) * K;
    __shared__ A smem[32];
    __shared__ A row_state[2];
    const sk_i64 row = blockIdx.x / splits;
    const int split = blockIdx.x % splits;
    const sk_ce_target<T> target(labels, probs, weight, keep, spread, smooth, row, true, ignore_index,
                                 has_ignore);
    const T* row_probs = probs == nullptr ? nullptr : probs + row * n;
    if (threadIdx.x < 32) {  // warp 0 merges the row's partials
        const sk_stats<A> st = sk_merge_row(partials, row, splits, 4, A(1), threadIdx.x);
        const A a_sum = sk_warp_sum(partials + 4 * row * splits + 3, splits, 4, threadIdx.x);
        if (threadIdx.x == 0) {
            row_state[0] = sk_log(st.total());
            row_state[1] = a_sum;
            smem[0] = st.max;
        }
    }
    __syncthreads();
    const A log_total = row_state[0], a_sum = row_state[1];
    const sk_shift<A> shift(smem[0]);
    A loss = 0;
    const sk_i64 first = split * chunks_per_split;
    for (sk_i64 q = first; q < first + chunks_per_split && q * CHUNK < n; ++q) {
        A v[K];
        sk_load_tile<T, TPR, VEC, NV>(x + row * n + q * CHUNK, nullptr, n - q * CHUNK, threadIdx.x, true,
                                      -sk_inf(A(0)), v);
#pragma unroll
        for (int k = 0; k < K; ++k) {
            const sk_i64 col = q * CHUNK + (static_cast<sk_i64>(k / VEC) * TPR + threadIdx.x) * VEC + k % VEC;
            const A logp = shift.z(v[k], A(1)) - log_total;
            const A a = col < n ? target.coefficient(col, row_probs) : A(0);
            loss += a == A(0) ? A(0) : a * logp;
            const A g = a_sum * sk_exp(logp) - a;
            v[k] = grad_divisor > A(0) ? g / grad_divisor : A(0);
        }
        if (grad != nullptr) sk_store_tile<T, TPR, VEC, NV>(grad + row * n + q * CHUNK, n - q * CHUNK,
                                                            threadIdx.x, true, v);
    }
    loss = sk_group_reduce<TPR, BLOCK>(loss, sk_sum_op(), smem);
    if (threadIdx.x == 0) loss_parts[row * splits + split] = -loss;
}
