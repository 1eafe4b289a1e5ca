// The kept set of one row for the sampling kernels (sampling.cu describes the method): rank
// keys, the block-wide 16-bin reductions, the radix threshold searches of top-k and top-p over
// the row, the shared-memory candidate list and its top-p / min-p, and the per-entry test.
#ifndef SOFTMAXKIT_SAMPLING_FILTERS_CUH
#define SOFTMAXKIT_SAMPLING_FILTERS_CUH

#include "common.cuh"

enum { SK_OK = 0, SK_HAS_NAN = 1, SK_EMPTY = 2, SK_TOO_FEW = 3 };  // sampling/_params.py's codes

constexpr int SK_DIGIT = 4;
constexpr int SK_BINS = 1 << SK_DIGIT;

typedef unsigned long long sk_u64;

// Order-preserving keys: a > b (neither NaN) iff key(a) > key(b); -0 and +0 share a key, as
// they compare equal (they are ties, ranked by index).
__device__ __forceinline__ sk_u64 sk_rank_key(float v) {
    const unsigned u = __float_as_uint(v == 0.0f ? 0.0f : v);
    return (u & 0x80000000u) ? static_cast<sk_u64>(~u) : static_cast<sk_u64>(u | 0x80000000u);
}
__device__ __forceinline__ sk_u64 sk_rank_key(double v) {
    const sk_u64 u = static_cast<sk_u64>(__double_as_longlong(v == 0.0 ? 0.0 : v));
    return (u >> 63) ? ~u : (u | (1ULL << 63));
}
__device__ __forceinline__ float sk_key_value(sk_u64 key, float) {
    const unsigned k = static_cast<unsigned>(key);
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}
__device__ __forceinline__ double sk_key_value(sk_u64 key, double) {
    return __longlong_as_double(static_cast<long long>((key >> 63) ? (key & ~(1ULL << 63)) : ~key));
}
template <typename A> struct sk_key_bits { static constexpr int value = 8 * static_cast<int>(sizeof(A)); };

// Whether a and b agree on every bit from `bit` up (`bit` may be 64: nothing to compare).
__device__ __forceinline__ bool sk_same_above(sk_u64 a, sk_u64 b, int bit) {
    return bit >= 64 || ((a ^ b) >> bit) == 0;
}

// A rank threshold: an entry is kept when key > key_at, or key == key_at and index <= index_at.
struct sk_rank {
    sk_u64 key;
    sk_i64 index;
    __device__ __forceinline__ bool keeps(sk_u64 k, sk_i64 i) const { return k > key || (k == key && i <= index); }
};

// One row and its parameters after the statistics pass.
template <typename T> struct sk_row {
    typedef typename sk_acc<T>::type A;
    const T* x;
    const sk_u8* mask;
    sk_i64 n;
    A max;
    A inv_t;  // 1 / T in the accumulator type, as the Numba kernels round it
    bool indicator;  // T = 0 or +inf in the row: the mass sits on the entries equal to the max

    // Row `row` of the (rows, n) logits and of the optional mask; max, inv_t and indicator are
    // set by the row's planning.
    __device__ __forceinline__ static sk_row at(const T* x, const sk_u8* mask, sk_i64 row, sk_i64 n) {
        sk_row r;
        r.x = x + row * n;
        r.mask = mask == nullptr ? nullptr : mask + row * n;
        r.n = n;
        return r;
    }
    // Whether entry i may be drawn at all (where= allows it and it is not -inf or NaN); v its value.
    __device__ __forceinline__ bool included(sk_i64 i, A& v) const {
        v = sk_to_acc(x[i]);
        return (mask == nullptr || mask[i] != 0) && v > -sk_inf(v);
    }
    // exp((v - max) / T) in the accumulator type, widened: the Numba kernels' weight.
    __device__ __forceinline__ double weight(A v) const {
        if (indicator) return v == max ? 1.0 : 0.0;
        return static_cast<double>(sk_exp((v - max) * inv_t));
    }
};

constexpr int SK_LIST = 1024;
// Top-k sets up to this size are gathered into shared memory (in index order): top-p, min-p
// and the draws then read the k candidates instead of the row, as the Numba kernels' list.

// Scratch of the block reductions and the candidate list (static shared memory of the kernels).
template <int BLOCK, typename A> struct sk_sample_smem {
    A cand_v[SK_LIST];
    sk_i64 cand_i[SK_LIST];
    double cand_w[SK_LIST];  // the weight drawn with: 0 when top-p or min-p drops it
    sk_u8 cand_keep[SK_LIST];
    unsigned offset[BLOCK];
    unsigned warp_offset[BLOCK / 32];
    double list_total;
    double mass[BLOCK / 32][SK_BINS];
    unsigned count[BLOCK / 32][SK_BINS];
    double mass_total[SK_BINS];
    unsigned count_total[SK_BINS];
    double chunk[BLOCK];  // the draws' chunk sums
    double warp_sum[BLOCK / 32];
    double warp_before[BLOCK / 32];
    double acc[32];
    sk_i64 i64[32];
};

// The 16 bins of every lane summed over the warp, reduce-scatter style (16 shuffles instead of
// 16 butterflies of 5): each step a lane keeps half of its bins and adds its partner's copy of
// that half. At the end lanes 2b and 2b + 1 hold the warp's total of bin sk_lane_bin(lane).
template <int HALF, typename Q>
__device__ __forceinline__ void sk_scatter_step(Q (&q)[SK_BINS], int lane) {
    const bool upper = (lane & (2 * HALF)) != 0;
#pragma unroll
    for (int j = 0; j < HALF; ++j) {
        const Q sent = upper ? q[j] : q[HALF + j];
        const Q got = __shfl_xor_sync(0xffffffffu, sent, 2 * HALF);
        q[j] = (upper ? q[HALF + j] : q[j]) + got;
    }
}
template <typename Q>
__device__ __forceinline__ Q sk_warp_scatter_sum(Q (&q)[SK_BINS], int lane) {
    static_assert(SK_BINS == 16, "four halving steps over the lanes 16, 8, 4, 2 apart");
    sk_scatter_step<8>(q, lane);
    sk_scatter_step<4>(q, lane);
    sk_scatter_step<2>(q, lane);
    sk_scatter_step<1>(q, lane);
    return q[0] + __shfl_xor_sync(0xffffffffu, q[0], 1);
}
__device__ __forceinline__ int sk_lane_bin(int lane) {
    return ((lane >> 4) & 1) * 8 + ((lane >> 3) & 1) * 4 + ((lane >> 2) & 1) * 2 + ((lane >> 1) & 1);
}

// Block totals of the 16 bins, in every thread's q (warps combined in warp order: deterministic).
template <int BLOCK, typename Q>
__device__ __forceinline__ void sk_block_bins(Q (&q)[SK_BINS], Q (*per_warp)[SK_BINS], Q* total) {
    constexpr int WARPS = BLOCK / 32;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const Q mine = sk_warp_scatter_sum(q, lane);
    // No barrier first: the previous call's last barrier already ordered its reads of
    // per_warp and total before these writes.
    if ((lane & 1) == 0) per_warp[warp][sk_lane_bin(lane)] = mine;
    __syncthreads();
    if (threadIdx.x < SK_BINS) {
        Q s = per_warp[0][threadIdx.x];
        for (int w = 1; w < WARPS; ++w) s += per_warp[w][threadIdx.x];
        total[threadIdx.x] = s;
    }
    __syncthreads();
#pragma unroll
    for (int b = 0; b < SK_BINS; ++b) q[b] = total[b];
}

// Per-thread digit counts packed as 8-bit fields of two 64-bit words (bins 0-7 and 8-15): one
// add per entry instead of 16 predicated ones; emptied into the 16 counters every 255 entries.
struct sk_packed_bins {
    sk_u64 low = 0, high = 0;
    int pending = 0;
    __device__ __forceinline__ void add(int d, unsigned (&c)[SK_BINS]) {
        const sk_u64 one = 1ULL << (8 * (d & 7));
        if (d < 8) low += one; else high += one;
        if (++pending == 255) flush(c);
    }
    __device__ __forceinline__ void flush(unsigned (&c)[SK_BINS]) {
#pragma unroll
        for (int b = 0; b < 8; ++b) {
            c[b] += static_cast<unsigned>((low >> (8 * b)) & 255u);
            c[b + 8] += static_cast<unsigned>((high >> (8 * b)) & 255u);
        }
        low = high = 0;
        pending = 0;
    }
};

// The rank threshold of the entry where the running count (MASS false: `target` = k) or the
// running weight (MASS true: `target` = p, a fraction of the eligible weight) of the eligible
// entries, taken from the highest rank down, first reaches the target. Eligible: included and
// kept by `within`. Returns false when rounding leaves the weight short of the target (keep all).
template <bool MASS, int BLOCK, typename T>
__device__ bool sk_rank_search(const sk_row<T>& r, sk_rank within, double target, sk_rank& found,
                               sk_sample_smem<BLOCK, typename sk_acc<T>::type>& sm) {
    typedef typename sk_acc<T>::type A;
    constexpr int KEY_BITS = sk_key_bits<A>::value;
    sk_u64 prefix = 0;
    double above = 0.0;  // count or weight of the eligible entries ranked above the prefix's range
    sk_i64 ties = 0;
    bool first = true;
    for (int shift = KEY_BITS - SK_DIGIT; shift >= 0; shift -= SK_DIGIT) {
        unsigned c[SK_BINS];  // rows hold fewer than 2^31 entries (the registry's gap)
        double w[SK_BINS];
#pragma unroll
        for (int b = 0; b < SK_BINS; ++b) { c[b] = 0u; w[b] = 0.0; }
        sk_packed_bins packed;
        for (sk_i64 i = threadIdx.x; i < r.n; i += BLOCK) {
            A v;
            if (!r.included(i, v)) continue;
            const sk_u64 key = sk_rank_key(v);
            if (!within.keeps(key, i) || !sk_same_above(key, prefix, shift + SK_DIGIT)) continue;
            const int d = static_cast<int>((key >> shift) & (SK_BINS - 1));
            packed.add(d, c);
            if (MASS) {
                const double wv = r.weight(v);
#pragma unroll
                for (int b = 0; b < SK_BINS; ++b) w[b] += b == d ? wv : 0.0;  // no indexing by d: registers
            }
        }
        packed.flush(c);
        sk_block_bins<BLOCK>(c, sm.count, sm.count_total);
        if (MASS) sk_block_bins<BLOCK>(w, sm.mass, sm.mass_total);
        if (MASS && first) {  // the first pass sees every eligible entry: the target's total
            double total = 0.0;
            for (int b = 0; b < SK_BINS; ++b) total += w[b];
            target *= total;
        }
        first = false;
        int d = -1;
#pragma unroll
        for (int b = SK_BINS - 1; b >= 0; --b) {  // the digit where the running total crosses
            const double here = MASS ? w[b] : static_cast<double>(c[b]);
            if (d < 0) {
                if (above + here >= target) {
                    d = b;
                    ties = c[b];
                } else {
                    above += here;
                }
            }
        }
        if (d < 0) return false;
        prefix |= static_cast<sk_u64>(d) << shift;
    }
    // `ties` entries share the threshold's value: take the first q of them in index order.
    sk_i64 q = ties;
    if (MASS) {
        const double level = r.weight(sk_key_value(prefix, A(0)));
        double cum = above;
        for (sk_i64 j = 1; j <= ties; ++j) {  // the Numba kernel's loop over the tied weights
            cum += level;
            if (cum >= target) { q = j; break; }
        }
    } else {
        q = static_cast<sk_i64>(target - above);
    }
    found.key = prefix;
    found.index = r.n;
    if (q >= ties) return true;
    // The q-th lowest index among the ties: the same digit search over the indices.
    int top = 0;
    while (top + SK_DIGIT < 64 && ((r.n - 1) >> (top + SK_DIGIT)) != 0) top += SK_DIGIT;
    sk_u64 index_prefix = 0;
    sk_i64 before = 0;
    for (int shift = top; shift >= 0; shift -= SK_DIGIT) {
        unsigned c[SK_BINS];
#pragma unroll
        for (int b = 0; b < SK_BINS; ++b) c[b] = 0;
        sk_packed_bins packed;
        for (sk_i64 i = threadIdx.x; i < r.n; i += BLOCK) {
            A v;
            if (!r.included(i, v)) continue;
            const sk_u64 key = sk_rank_key(v);
            if (key != prefix || !within.keeps(key, i)) continue;
            if (!sk_same_above(static_cast<sk_u64>(i), index_prefix, shift + SK_DIGIT)) continue;
            packed.add(static_cast<int>((i >> shift) & (SK_BINS - 1)), c);
        }
        packed.flush(c);
        sk_block_bins<BLOCK>(c, sm.count, sm.count_total);
        int d = -1;
#pragma unroll
        for (int b = 0; b < SK_BINS; ++b) {  // lowest indices first
            if (d < 0) {
                if (before + c[b] >= q) d = b; else before += c[b];
            }
        }
        index_prefix |= static_cast<sk_u64>(d < 0 ? SK_BINS - 1 : d) << shift;
    }
    found.index = static_cast<sk_i64>(index_prefix);
    return true;
}

// Gathers the entries `keep` keeps (exactly `m` of them, m <= SK_LIST) into the candidate list
// in index order: each thread takes a contiguous chunk, and the chunks' counts give the offsets.
template <int BLOCK, typename T>
__device__ void sk_gather(const sk_row<T>& r, sk_rank keep, sk_sample_smem<BLOCK, typename sk_acc<T>::type>& sm) {
    typedef typename sk_acc<T>::type A;
    constexpr int WARPS = BLOCK / 32;
    const sk_i64 chunk = (r.n + BLOCK - 1) / BLOCK;
    const sk_i64 start = threadIdx.x * chunk;
    const sk_i64 stop = start + chunk < r.n ? start + chunk : r.n;
    unsigned mine = 0;
    for (sk_i64 i = start; i < stop; ++i) {
        A v;
        mine += r.included(i, v) && keep.keeps(sk_rank_key(v), i) ? 1u : 0u;
    }
    sm.offset[threadIdx.x] = mine;
    __syncthreads();
    if (threadIdx.x < WARPS) {  // offsets within each warp, then of the warps (integers: any order)
        unsigned s = 0;
        for (int l = 0; l < 32; ++l) {
            const unsigned c = sm.offset[threadIdx.x * 32 + l];
            sm.offset[threadIdx.x * 32 + l] = s;
            s += c;
        }
        sm.warp_offset[threadIdx.x] = s;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned s = 0;
        for (int w = 0; w < WARPS; ++w) {
            const unsigned c = sm.warp_offset[w];
            sm.warp_offset[w] = s;
            s += c;
        }
    }
    __syncthreads();
    unsigned at = sm.warp_offset[threadIdx.x >> 5] + sm.offset[threadIdx.x];
    for (sk_i64 i = start; i < stop && mine > 0; ++i) {
        A v;
        if (r.included(i, v) && keep.keeps(sk_rank_key(v), i) && at < SK_LIST) {  // exactly m fit
            sm.cand_v[at] = v;
            sm.cand_i[at] = i;
            ++at;
            --mine;
        }
    }
    __syncthreads();
}

// Top-p and min-p over the m candidates. A candidate stays when the weight of the candidates
// ranked above it (value, then lower index) is below p of their total (summed in index order,
// as the Numba kernel sums its list), and its weight is at least min_p. Each thread ranks its
// candidates against all the others: O(m^2 / BLOCK) work, no sort.
template <int BLOCK, typename T>
__device__ void sk_filter_list(const sk_row<T>& r, int m, double p, double min_p,
                               sk_sample_smem<BLOCK, typename sk_acc<T>::type>& sm) {
    for (int j = threadIdx.x; j < m; j += BLOCK) sm.cand_w[j] = r.weight(sm.cand_v[j]);
    __syncthreads();
    if (p < 1.0 && threadIdx.x == 0) {
        double total = 0.0;
        for (int j = 0; j < m; ++j) total += sm.cand_w[j];
        sm.list_total = total;
    }
    __syncthreads();
    const double target = p * sm.list_total;
    for (int j = threadIdx.x; j < m; j += BLOCK) {
        bool keep = sm.cand_w[j] >= min_p;
        if (p < 1.0 && keep) {
            const sk_u64 key = sk_rank_key(sm.cand_v[j]);
            double above = 0.0;
            for (int l = 0; l < m; ++l) {
                const sk_u64 other = sk_rank_key(sm.cand_v[l]);
                if (other > key || (other == key && l < j)) above += sm.cand_w[l];
            }
            keep = above < target;
        }
        sm.cand_keep[j] = keep ? 1 : 0;
    }
    __syncthreads();
    // The weights drawn with; written after every thread has read the weights above.
    for (int j = threadIdx.x; j < m; j += BLOCK) {
        if (!sm.cand_keep[j]) sm.cand_w[j] = 0.0;
    }
    __syncthreads();
}

// The statistics pass and the filters of one row: its status, and in `r`, `keep` and `listed`
// what the draws need: listed >= 0 when the kept set is the candidate list (listed entries),
// -1 when it is the row's entries ranked at or above `keep` with weight >= min_p. Every thread
// of the block calls it and gets the same answers.
template <int BLOCK, typename T>
__device__ int sk_plan_row(sk_row<T>& r, double inv_t, sk_i64 k, double p, double min_p, sk_rank& keep,
                           int& listed, sk_sample_smem<BLOCK, typename sk_acc<T>::type>& sm) {
    typedef typename sk_acc<T>::type A;
    A m = -sk_inf(A(0));
    sk_i64 count = 0, nan = 0;
    listed = -1;
    for (sk_i64 i = threadIdx.x; i < r.n; i += BLOCK) {
        if (r.mask != nullptr && r.mask[i] == 0) continue;
        const A v = sk_to_acc(r.x[i]);
        if (v != v) {
            nan = 1;
        } else if (v > -sk_inf(v)) {
            ++count;
            m = v > m ? v : m;
        }
    }
    A* acc = reinterpret_cast<A*>(sm.acc);
    m = sk_group_reduce<BLOCK, BLOCK>(m, sk_max_op(), acc);
    count = sk_group_reduce<BLOCK, BLOCK>(count, sk_sum_op(), sm.i64);
    nan = sk_group_reduce<BLOCK, BLOCK>(nan, sk_sum_op(), sm.i64);
    if (nan != 0) return SK_HAS_NAN;
    if (count == 0) return SK_EMPTY;
    r.max = m;
    r.inv_t = static_cast<A>(inv_t);
    r.indicator = m == sk_inf(m) || r.inv_t == sk_inf(r.inv_t);
    keep.key = 0;
    keep.index = r.n;  // everything included
    sk_rank found;
    if (k < count && sk_rank_search<false, BLOCK>(r, keep, static_cast<double>(k), found, sm)) {
        keep = found;
        if (k <= SK_LIST) {
            sk_gather<BLOCK>(r, keep, sm);
            listed = static_cast<int>(k);
            sk_filter_list<BLOCK>(r, listed, p, min_p, sm);
            return SK_OK;
        }
    }
    if (p < 1.0 && sk_rank_search<true, BLOCK>(r, keep, p, found, sm)) keep = found;
    return SK_OK;
}

// Whether the filters keep entry i (min-p compares the weight: entries of weight 0 are kept
// when min_p is 0, as in the masks); its weight in w.
template <typename T>
__device__ __forceinline__ bool sk_kept(const sk_row<T>& r, sk_rank keep, double min_p, sk_i64 i, double& w) {
    typename sk_acc<T>::type v;
    w = 0.0;
    if (!r.included(i, v) || !keep.keeps(sk_rank_key(v), i)) return false;
    w = r.weight(v);
    return w >= min_p;
}

#endif  // SOFTMAXKIT_SAMPLING_FILTERS_CUH
