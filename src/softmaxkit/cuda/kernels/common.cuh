// Shared pieces of the softmaxkit CUDA kernels: storage types, conversions, row tiles and
// deterministic group reductions. Written for NVRTC as well as nvcc: no header is included,
// so the kernels compile wherever NVRTC does, whatever CUDA headers are installed.
// Without __CUDA_ARCH__ (a host compiler) the few lines of inline PTX take the host
// fallbacks of tests/cuda_host/cuda_host.h, which runs these kernels on the CPU for tests.
#ifndef SOFTMAXKIT_COMMON_CUH
#define SOFTMAXKIT_COMMON_CUH

typedef long long sk_i64;
typedef unsigned char sk_u8;

// float16 and bfloat16 travel as their raw bits (bit for bit __half and __nv_bfloat16); the
// conversions below are the PTX instructions cuda_fp16.h uses, and round to nearest even.
struct sk_half { unsigned short bits; };
struct sk_bfloat16 { unsigned short bits; };

// Half types accumulate in float (SPEC section 2); float and double in themselves.
template <typename T> struct sk_acc { typedef T type; };
template <> struct sk_acc<sk_half> { typedef float type; };
template <> struct sk_acc<sk_bfloat16> { typedef float type; };

__device__ __forceinline__ float sk_to_acc(float v) { return v; }
__device__ __forceinline__ double sk_to_acc(double v) { return v; }
__device__ __forceinline__ float sk_to_acc(sk_half v) {
#ifdef __CUDA_ARCH__
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.bits));
    return f;
#else
    return sk_host_half_to_float(v.bits);
#endif
}
__device__ __forceinline__ float sk_to_acc(sk_bfloat16 v) {
    return __uint_as_float(static_cast<unsigned>(v.bits) << 16);
}

template <typename T> __device__ __forceinline__ T sk_from_acc(typename sk_acc<T>::type v);
template <> __device__ __forceinline__ float sk_from_acc<float>(float v) { return v; }
template <> __device__ __forceinline__ double sk_from_acc<double>(double v) { return v; }
template <> __device__ __forceinline__ sk_half sk_from_acc<sk_half>(float v) {
    sk_half h;
#ifdef __CUDA_ARCH__
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(v));
#else
    h.bits = sk_host_float_to_half(v);
#endif
    return h;
}
template <> __device__ __forceinline__ sk_bfloat16 sk_from_acc<sk_bfloat16>(float v) {
    // Round to nearest even in integer arithmetic (works on every architecture); NaN stays
    // a quiet NaN of the same sign instead of rounding into infinity.
    unsigned u = __float_as_uint(v);
    sk_bfloat16 b;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        b.bits = static_cast<unsigned short>((u >> 16) | 0x0040u);
    } else {
        u += 0x7fffu + ((u >> 16) & 1u);
        b.bits = static_cast<unsigned short>(u >> 16);
    }
    return b;
}

__device__ __forceinline__ float sk_inf(float) { return __int_as_float(0x7f800000); }
__device__ __forceinline__ double sk_inf(double) { return __longlong_as_double(0x7ff0000000000000LL); }
__device__ __forceinline__ float sk_nan(float) { return __int_as_float(0x7fc00000); }
__device__ __forceinline__ double sk_nan(double) { return __longlong_as_double(0x7ff8000000000000LL); }

// Full-precision exp/log: probabilities far below the max must stay relatively accurate
// (SPEC section 2), which the fast __expf (flushes subnormals) would not give.
__device__ __forceinline__ float sk_exp(float v) { return expf(v); }
__device__ __forceinline__ double sk_exp(double v) { return exp(v); }
__device__ __forceinline__ float sk_log(float v) { return logf(v); }
__device__ __forceinline__ double sk_log(double v) { return log(v); }
__device__ __forceinline__ float sk_log1p(float v) { return log1pf(v); }
__device__ __forceinline__ double sk_log1p(double v) { return log1p(v); }
__device__ __forceinline__ bool sk_isfinite(float v) { return fabsf(v) < sk_inf(v); }
__device__ __forceinline__ bool sk_isfinite(double v) { return fabs(v) < sk_inf(v); }

// max that propagates NaN from either side, as the reference engine's xp.max does: a NaN in
// the row must not be dropped by fmax, or a row holding NaN and +inf would look like +inf.
template <typename A> __device__ __forceinline__ A sk_nanmax(A a, A b) {
    return (a > b || a != a) ? a : b;
}

struct sk_max_op {
    template <typename A> __device__ __forceinline__ A operator()(A a, A b) const { return sk_nanmax(a, b); }
};
struct sk_sum_op {
    template <typename A> __device__ __forceinline__ A operator()(A a, A b) const { return a + b; }
};

// Reduce over a group of TPR consecutive threads (TPR <= 32: one warp's lanes; TPR == BLOCK
// > 32: the whole block). The butterfly gives every lane the same bits (a + b == b + a in
// IEEE arithmetic) and the warp partials are combined in warp order: the result is fixed by
// the launch configuration alone, never by timing (SPEC: determinism).
template <int TPR, int BLOCK, typename A, typename Op>
__device__ __forceinline__ A sk_group_reduce(A v, Op op, A* smem) {
    constexpr int LANES = TPR < 32 ? TPR : 32;
#pragma unroll
    for (int offset = LANES / 2; offset > 0; offset >>= 1) {
        v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
    }
    if (TPR <= 32) return v;
    constexpr int WARPS = BLOCK / 32;
    __syncthreads();  // the previous reduction may still be reading smem
    if ((threadIdx.x & 31) == 0) smem[threadIdx.x >> 5] = v;
    __syncthreads();
    A r = smem[0];
#pragma unroll
    for (int w = 1; w < WARPS; ++w) r = op(r, smem[w]);
    return r;
}

// The dynamic shared memory of a launch (the host harness hands out a per-block buffer).
#ifdef __CUDA_ARCH__
#define SK_DYNAMIC_SHARED(T, name) extern __shared__ __align__(16) T name[]
#else
#define SK_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(sk_host::dynamic_shared())
#endif

// 16-byte (or narrower) packets for vectorised loads and stores.
template <typename T, int VEC> struct alignas(sizeof(T) * VEC) sk_pack { T v[VEC]; };

// A row tile: thread `lane` of a group of TPR threads holds the VEC*NV elements
// (k*TPR + lane)*VEC + j, k < NV, j < VEC, so each packet access of the group is coalesced.
// Elements at or past n, and masked ones, hold `fill`. With VEC > 1 the launcher guarantees
// 16-byte alignment of the row and n % VEC == 0, so a packet is wholly inside or outside.
template <typename T, int TPR, int VEC, int NV, typename A>
__device__ __forceinline__ void sk_load_tile(const T* __restrict__ p, const sk_u8* __restrict__ mask,
                                             sk_i64 n, int lane, bool live, A fill, A (&v)[VEC * NV]) {
#pragma unroll
    for (int k = 0; k < NV; ++k) {
        const sk_i64 i = (static_cast<sk_i64>(k) * TPR + lane) * VEC;
        if (live && i < n) {
            const sk_pack<T, VEC> pk = *reinterpret_cast<const sk_pack<T, VEC>*>(p + i);
#pragma unroll
            for (int j = 0; j < VEC; ++j) {
                v[k * VEC + j] = (mask != nullptr && !mask[i + j]) ? fill : sk_to_acc(pk.v[j]);
            }
        } else {
#pragma unroll
            for (int j = 0; j < VEC; ++j) v[k * VEC + j] = fill;
        }
    }
}

template <typename T, int TPR, int VEC, int NV, typename A>
__device__ __forceinline__ void sk_store_tile(T* __restrict__ p, sk_i64 n, int lane, bool live,
                                              const A (&v)[VEC * NV]) {
#pragma unroll
    for (int k = 0; k < NV; ++k) {
        const sk_i64 i = (static_cast<sk_i64>(k) * TPR + lane) * VEC;
        if (live && i < n) {
            sk_pack<T, VEC> pk;
#pragma unroll
            for (int j = 0; j < VEC; ++j) pk.v[j] = sk_from_acc<T>(v[k * VEC + j]);
            *reinterpret_cast<sk_pack<T, VEC>*>(p + i) = pk;
        }
    }
}

// The shift of a row (SPEC section 2, as the generic engine's shifted_rows): the row max when
// finite, else 0; a row whose max is +inf maps its +inf entries to 0 and the rest to -inf.
template <typename A> struct sk_shift {
    A shift;
    bool pos_inf;
    __device__ __forceinline__ explicit sk_shift(A row_max)
        : shift(sk_isfinite(row_max) ? row_max : A(0)), pos_inf(row_max == sk_inf(row_max)) {}
    __device__ __forceinline__ A z(A x, A temperature) const {
        if (pos_inf) return x == sk_inf(x) ? A(0) : -sk_inf(x);
        return (x - shift) / temperature;
    }
};

// Exponential sums of a tile split as (count of entries at the max, sum of the others): the
// count keeps logsumexp's log1p form exact (Blanchard, Higham & Higham 2021) and the pair
// merges across tiles (below). Replaces each v by z (log_out) or by exp(z).
template <int TPR, int BLOCK, int K, typename A>
__device__ __forceinline__ void sk_tile_sums(A (&v)[K], A row_max, A temperature, bool log_out,
                                             A& at_max, A& rest, A* smem) {
    const sk_shift<A> s(row_max);
    A c = 0, r = 0;
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const A z = s.z(v[k], temperature);
        const A e = sk_exp(z);
        if (z == A(0)) c += A(1); else r += e;
        v[k] = log_out ? z : e;
    }
    at_max = sk_group_reduce<TPR, BLOCK>(c, sk_sum_op(), smem);
    rest = sk_group_reduce<TPR, BLOCK>(r, sk_sum_op(), smem);
}

template <int TPR, int BLOCK, int K, typename A>
__device__ __forceinline__ A sk_tile_max(const A (&v)[K], A* smem) {
    A m = -sk_inf(A(0));
#pragma unroll
    for (int k = 0; k < K; ++k) m = sk_nanmax(m, v[k]);
    return sk_group_reduce<TPR, BLOCK>(m, sk_max_op(), smem);
}

// Online-normaliser merge of (max, count at max, rest) partials (Milakov & Gimelshein,
// "Online normalizer calculation for softmax", 2018): the part whose max is below the new
// max is rescaled by exp((m - M) / T) into `rest`. Infinite and NaN maxima need no special
// case: exp(-inf) = 0 drops parts below +inf, and a NaN max makes the rest NaN.
template <typename A> struct sk_stats {
    A max, at_max, rest;
    __device__ __forceinline__ void merge(A m, A c, A r, A temperature) {
        const A M = sk_nanmax(max, m);
        const bool own_top = max == M, other_top = m == M;
        const A own_rest = own_top ? rest : (at_max + rest) * sk_exp((max - M) / temperature);
        const A other_rest = other_top ? r : (c + r) * sk_exp((m - M) / temperature);
        at_max = (own_top ? at_max : A(0)) + (other_top ? c : A(0));
        rest = own_rest + other_rest;
        max = M;
    }
    // Sum of exponentials; 1 for a row with nothing included, whose z are all -inf.
    __device__ __forceinline__ A total() const {
        const A s = at_max + rest;
        return s == A(0) ? A(1) : s;
    }
    // log(sum(exp(x))) = max + log(count) + log1p(rest / count), as the generic engine.
    __device__ __forceinline__ A logsumexp() const {
        if (at_max > A(0)) return max + (sk_log(at_max) + sk_log1p(rest / at_max));
        return max != max ? max : -sk_inf(max);
    }
};

// Reduce over the 32 lanes of a warp in butterfly order (every lane gets the same bits).
template <typename A, typename Op>
__device__ __forceinline__ A sk_warp_reduce(A v, Op op) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// The sum of values[0], values[stride], ... (count of them) by one whole warp: lane l adds
// entries l, l + 32, ... in order, then the lanes' sums meet in a butterfly. The order is
// fixed by `count` alone (deterministic) and the error grows with log2(count), not count.
template <typename A>
__device__ __forceinline__ A sk_warp_sum(const A* __restrict__ values, int count, int stride, int lane) {
    A s = 0;
    for (int i = lane; i < count; i += 32) s += values[static_cast<sk_i64>(stride) * i];
    return sk_warp_reduce(s, sk_sum_op());
}

// The partials of one row (`stride` values each, (max, at_max, rest) first) merged by one
// whole warp: lane l merges partials l, l + 32, ... in order, then the lanes merge in a
// butterfly. merge() is commutative bit for bit (each sum has two operands), so every lane
// ends with the same bits, fixed by `splits` alone; the error grows with log2(splits).
template <typename A>
__device__ __forceinline__ sk_stats<A> sk_merge_row(const A* __restrict__ partials, sk_i64 row, int splits,
                                                    int stride, A temperature, int lane) {
    sk_stats<A> st;
    st.max = -sk_inf(A(0));
    st.at_max = A(0);
    st.rest = A(0);
    const A* p = partials + stride * row * splits;
    for (int s = lane; s < splits; s += 32) {
        st.merge(p[stride * s], p[stride * s + 1], p[stride * s + 2], temperature);
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        const A m = __shfl_xor_sync(0xffffffffu, st.max, offset);
        const A c = __shfl_xor_sync(0xffffffffu, st.at_max, offset);
        const A r = __shfl_xor_sync(0xffffffffu, st.rest, offset);
        st.merge(m, c, r, temperature);
    }
    return st;
}

#endif  // SOFTMAXKIT_COMMON_CUH
