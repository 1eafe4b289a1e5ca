// Sampling from the filtered softmax, one block per row: temperature, top-k, top-p, min-p and
// where= masks, then inverse-CDF draws from uniforms the caller drew (softmaxkit.sampling's
// module docstring defines the kept set; the Numba kernels in sampling/_kernels.py are the
// same algorithm on the CPU, and the draws agree given the same uniforms).
//
// Nothing is sorted. Every included entry has a rank key: its value (order-preserving bits,
// larger first), then its index (lower first), so all ranks are distinct. Top-k and top-p
// are each a threshold search over these keys: a row is reread once per 4-bit digit of the
// value (8 passes for float, 16 for double), each pass counting (top-k) or weighing (top-p)
// the entries that share the digits found so far, 16 bins a pass, until the digit where the
// running count reaches k or the running weight reaches p of the kept weight is known (the
// radix selection of PyTorch's topk kernel, SortingRadixSelect.cuh, extended to weights, with
// bins in registers and fixed-order sums instead of atomics, so the result is the same on
// every run; FlashInfer instead draws by rejection around pivots, which gives the same
// distribution but not the same index for a given uniform). Ties at the
// threshold value are resolved by the same search over the index digits. The kept set is then
// "rank at or above a threshold (value, index)" and weight >= min_p.
//
// A top-k set of at most SK_LIST entries (the usual LLM case, k = 50) is gathered into shared
// memory in index order; top-p and min-p then rank the k candidates against each other and the
// draws read the list, as the Numba kernels do with theirs, instead of rereading the row.
//
// Draws from the row: each thread sums the kept weights of a contiguous chunk of the row; a
// draw with uniform u finds the first chunk, then the first entry, whose cumulative weight
// (index order) exceeds u * total, reading the chunk sums and one chunk. With replacement the
// threads draw in parallel; without, thread 0 draws one after another, zeroing what it took.
#include "common.cuh"
#include "sampling_filters.cuh"

// The weight entry i is drawn with: 0 unless kept and not among the `n_taken` already drawn.
template <typename T>
__device__ __forceinline__ double sk_draw_weight(const sk_row<T>& r, sk_rank keep, double min_p, sk_i64 i,
                                                 const sk_i64* taken, sk_i64 n_taken) {
    double w;
    if (!sk_kept(r, keep, min_p, i, w)) return 0.0;
    for (sk_i64 j = 0; j < n_taken; ++j) {
        if (taken[j] == i) return 0.0;
    }
    return w;
}

// One draw: the first entry (index order) whose cumulative kept weight exceeds u * total,
// found from the warp sums, then the chunk sums, then one chunk; the last positive entry
// there when rounding leaves the target at or above the sum.
template <int BLOCK, typename T>
__device__ sk_i64 sk_draw(const sk_row<T>& r, sk_rank keep, double min_p, double u, sk_i64 chunk,
                          const double* chunk_sum, const double* warp_sum, const double* warp_before,
                          const sk_i64* taken, sk_i64 n_taken) {
    constexpr int WARPS = BLOCK / 32;
    const double target = u * (warp_before[WARPS - 1] + warp_sum[WARPS - 1]);
    int t = -1;
    double cum = -sk_inf(0.0);  // -inf: never crosses, so the chunk's last positive entry is taken
    for (int w = 0; w < WARPS && t < 0; ++w) {
        if (!(warp_sum[w] > 0.0 && warp_before[w] + warp_sum[w] > target)) continue;
        double c = warp_before[w];
        for (int l = 0; l < 32; ++l) {
            const double s = chunk_sum[w * 32 + l];
            if (!(s > 0.0)) continue;
            t = w * 32 + l;  // the warp's last positive chunk unless one crosses before
            if (c + s > target) {
                cum = c;
                break;
            }
            c += s;
        }
    }
    for (int c = BLOCK - 1; c >= 0 && t < 0; --c) {  // the target at the total: the last positive chunk
        if (chunk_sum[c] > 0.0) t = c;
    }
    const sk_i64 start = static_cast<sk_i64>(t) * chunk;
    const sk_i64 stop = start + chunk < r.n ? start + chunk : r.n;
    sk_i64 last = -1;
    for (sk_i64 i = start; i < stop; ++i) {
        const double w = sk_draw_weight(r, keep, min_p, i, taken, n_taken);
        if (w > 0.0) {
            cum += w;
            last = i;
            if (cum > target) return i;
        }
    }
    return last;
}

// One draw from the candidate list, as the Numba kernel draws from its list: the total and
// the cumulative weights in index order; the last positive candidate if rounding leaves the
// target at the total.
template <int BLOCK, typename A>
__device__ sk_i64 sk_draw_listed(const sk_sample_smem<BLOCK, A>& sm, int m, double u) {
    double total = 0.0;
    for (int j = 0; j < m; ++j) total += sm.cand_w[j];
    const double target = u * total;
    double cum = 0.0;
    int last = -1;
    for (int j = 0; j < m; ++j) {
        const double w = sm.cand_w[j];
        if (w > 0.0) {
            cum += w;
            last = j;
            if (cum > target) return sm.cand_i[j];
        }
    }
    return sm.cand_i[last];
}

template <typename T, int BLOCK>
__global__ void __launch_bounds__(BLOCK, 1)
sk_sample_rows(const T* __restrict__ x, const sk_u8* __restrict__ mask, const double* __restrict__ inv_t,
               const sk_i64* __restrict__ top_k, const double* __restrict__ top_p,
               const double* __restrict__ min_p, const double* __restrict__ u, sk_i64* __restrict__ out,
               signed char* __restrict__ status, sk_i64 rows, sk_i64 n, sk_i64 draws, int replacement) {
    constexpr int WARPS = BLOCK / 32;
    __shared__ sk_sample_smem<BLOCK, typename sk_acc<T>::type> sm;
    const sk_i64 row = blockIdx.x;
    if (row >= rows) return;  // the whole block: rows are block-uniform
    sk_row<T> r = sk_row<T>::at(x, mask, row, n);
    sk_rank keep;
    int listed;
    const double mp = min_p[row];
    int st = sk_plan_row<BLOCK>(r, inv_t[row], top_k[row], top_p[row], mp, keep, listed, sm);
    sk_i64* picks = out + row * draws;
    const double* uniforms = u + row * draws;
    if (st == SK_OK && listed >= 0) {
        sk_i64 positive = 0;
        for (int j = 0; j < listed; ++j) positive += sm.cand_w[j] > 0.0;
        __syncthreads();  // every thread has counted before thread 0 zeroes what it draws
        if (!replacement && positive < draws) {
            st = SK_TOO_FEW;
        } else if (replacement) {
            for (sk_i64 d = threadIdx.x; d < draws; d += BLOCK) picks[d] = sk_draw_listed(sm, listed, uniforms[d]);
        } else if (threadIdx.x == 0) {  // one after another, each from what is left
            for (sk_i64 d = 0; d < draws; ++d) {
                const sk_i64 i = sk_draw_listed(sm, listed, uniforms[d]);
                picks[d] = i;
                for (int j = 0; j < listed; ++j) {
                    if (sm.cand_i[j] == i) sm.cand_w[j] = 0.0;
                }
            }
        }
    } else if (st == SK_OK) {
        const sk_i64 chunk = (n + BLOCK - 1) / BLOCK;
        const sk_i64 start = threadIdx.x * chunk;
        double s = 0.0;
        sk_i64 positive = 0;
        for (sk_i64 i = start; i < start + chunk && i < n; ++i) {
            const double w = sk_draw_weight(r, keep, mp, i, picks, 0);
            s += w;
            positive += w > 0.0;
        }
        sm.chunk[threadIdx.x] = s;
        positive = sk_group_reduce<BLOCK, BLOCK>(positive, sk_sum_op(), sm.i64);  // its barriers publish chunk[]
        if (threadIdx.x < WARPS) {
            double ws = 0.0;
            for (int l = 0; l < 32; ++l) ws += sm.chunk[threadIdx.x * 32 + l];
            sm.warp_sum[threadIdx.x] = ws;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            double before = 0.0;
            for (int w = 0; w < WARPS; ++w) {
                sm.warp_before[w] = before;
                before += sm.warp_sum[w];
            }
        }
        __syncthreads();
        if (!replacement && positive < draws) {
            st = SK_TOO_FEW;
        } else if (replacement) {
            for (sk_i64 d = threadIdx.x; d < draws; d += BLOCK) {
                picks[d] = sk_draw<BLOCK>(r, keep, mp, uniforms[d], chunk, sm.chunk, sm.warp_sum,
                                          sm.warp_before, picks, 0);
            }
        } else if (threadIdx.x == 0) {
            // One after another, each from what is left: the chunk and sums of a draw are redone
            // without it (thread 0 alone reads them from here on).
            for (sk_i64 d = 0; d < draws; ++d) {
                const sk_i64 i = sk_draw<BLOCK>(r, keep, mp, uniforms[d], chunk, sm.chunk, sm.warp_sum,
                                                sm.warp_before, picks, d);
                picks[d] = i;
                const int t = static_cast<int>(i / chunk), w = t / 32;
                double cs = 0.0;
                for (sk_i64 j = t * chunk; j < (t + 1) * chunk && j < n; ++j) {
                    cs += sk_draw_weight(r, keep, mp, j, picks, d + 1);
                }
                sm.chunk[t] = cs;
                double ws = 0.0;
                for (int l = 0; l < 32; ++l) ws += sm.chunk[w * 32 + l];
                sm.warp_sum[w] = ws;
                double before = 0.0;
                for (int v = 0; v < WARPS; ++v) {
                    sm.warp_before[v] = before;
                    before += sm.warp_sum[v];
                }
            }
        }
    }
    if (threadIdx.x == 0) status[row] = static_cast<signed char>(st);
}

// The kept set of each row as 0/1 bytes (what sk_sample_rows draws from): top_k_mask,
// top_p_mask and min_p_mask on GPU arrays.
template <typename T, int BLOCK>
__global__ void __launch_bounds__(BLOCK, 1)
sk_filter_rows(const T* __restrict__ x, const sk_u8* __restrict__ mask, const double* __restrict__ inv_t,
               const sk_i64* __restrict__ top_k, const double* __restrict__ top_p,
               const double* __restrict__ min_p, sk_u8* __restrict__ keep_out,
               signed char* __restrict__ status, sk_i64 rows, sk_i64 n) {
    __shared__ sk_sample_smem<BLOCK, typename sk_acc<T>::type> sm;
    const sk_i64 row = blockIdx.x;
    if (row >= rows) return;  // the whole block: rows are block-uniform
    sk_row<T> r = sk_row<T>::at(x, mask, row, n);
    sk_rank keep;
    int listed;
    const double mp = min_p[row];
    const int st = sk_plan_row<BLOCK>(r, inv_t[row], top_k[row], top_p[row], mp, keep, listed, sm);
    sk_u8* o = keep_out + row * n;
    for (sk_i64 i = threadIdx.x; i < n; i += BLOCK) {
        double w;
        o[i] = st == SK_OK && listed < 0 && sk_kept(r, keep, mp, i, w) ? 1 : 0;
    }
    if (st == SK_OK && listed >= 0) {
        __syncthreads();  // the zeros above are written before the candidates' ones
        for (int j = threadIdx.x; j < listed; j += BLOCK) {
            if (sm.cand_keep[j]) o[sm.cand_i[j]] = 1;
        }
    }
    if (threadIdx.x == 0) status[row] = static_cast<signed char>(st);
}
