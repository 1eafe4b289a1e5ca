// The CUDA execution model on the host, just enough to run softmaxkit's kernels (the .cu text
// NVRTC compiles, unchanged) as C++ under AddressSanitizer, UndefinedBehaviorSanitizer and
// ThreadSanitizer. tests/cuda_on_cpu.py builds and drives it.
//
// * Each CUDA thread is a host thread of control: a ucontext fiber (default) or, with
//   SK_HOST_THREADS (the ThreadSanitizer build), a std::thread. Blocks run one after another.
// * __syncthreads is a barrier over the block's threads that have not exited (as the hardware
//   counts them); __shfl_xor_sync writes the lane's value to a per-warp slot, waits for the
//   warp, reads the partner's slot and waits again before the slot can be reused.
// * Fibers switch only at those barriers, and the scheduler's policy decides who runs next:
//   ascending (the lowest runnable thread: warp 0 runs ahead of the block), descending (the
//   highest: readers run before thread 0 writes) or seeded random. A missing barrier then shows
//   as a result that depends on the policy or is wrong; with threads, as a TSan report.
// * __shared__ variables are function statics (one block runs at a time); the dynamic shared
//   memory is a heap buffer of exactly the launch's size (a read past it is an
//   ASan report). Both are refilled with 0xff bytes (NaN) before every block, so a read of
//   shared memory not written in this block is NaN.
// * threadIdx/blockIdx/blockDim/gridDim read the current thread's record (a thread_local).
// * The kernels' inline PTX has #ifndef __CUDA_ARCH__ fallbacks: sk_host_half_to_float and
//   sk_host_float_to_half below (_Float16, round to nearest even like cvt.rn.f16.f32).
#ifndef SK_CUDA_HOST_H
#define SK_CUDA_HOST_H

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>
#ifndef SK_HOST_THREADS
#include <sys/mman.h>
#include <ucontext.h>
#endif
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define SK_ASAN 1
#endif

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __align__(n) alignas(n)
#define __shared__ static

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

inline float __int_as_float(int v) { float f; std::memcpy(&f, &v, 4); return f; }
inline float __uint_as_float(unsigned v) { float f; std::memcpy(&f, &v, 4); return f; }
inline unsigned __float_as_uint(float v) { unsigned u; std::memcpy(&u, &v, 4); return u; }
inline double __longlong_as_double(long long v) { double d; std::memcpy(&d, &v, 8); return d; }
inline long long __double_as_longlong(double v) { long long l; std::memcpy(&l, &v, 8); return l; }

inline float sk_host_half_to_float(unsigned short bits) { _Float16 h; std::memcpy(&h, &bits, 2); return h; }
inline unsigned short sk_host_float_to_half(float v) {
    const _Float16 h = static_cast<_Float16>(v);
    unsigned short bits;
    std::memcpy(&bits, &h, 2);
    return bits;
}

namespace sk_host {

enum Policy { ASCENDING = 0, DESCENDING = 1, RANDOM = 2 };

[[noreturn]] inline void fail(const char* what) {
    std::fprintf(stderr, "cuda_host: %s\n", what);
    std::fflush(stderr);
    std::abort();
}

struct Thread;
struct Launch {
    dim3 grid, block, block_idx;
    std::vector<unsigned char> shared;  // dynamic shared memory of the current block
    std::vector<unsigned long long> exchange;  // one shuffle slot per thread
};
inline Launch* launch_state = nullptr;

struct Thread {
    dim3 idx;
    unsigned index = 0;
#ifndef SK_HOST_THREADS
    ucontext_t context{};
    void* stack = nullptr;
    std::size_t stack_size = 0;
    int waiting = -1;  // the barrier it waits at (-1: runnable)
    bool done = false;
#endif
};
inline thread_local Thread* self = nullptr;

inline void* dynamic_shared() { return launch_state->shared.data(); }

// The kernels' static __shared__ variables (address, bytes), registered by the driver from the
// library's symbol table (function-local statics of the sk_ kernels): the C++ language cannot
// enumerate them, and GCC ignores section attributes on template statics.
inline std::vector<std::pair<volatile unsigned char*, std::size_t>> static_shared;

// Shared memory before every block: 0xff bytes (NaN), so a block that reads shared memory it
// did not write in this block (a missing barrier) reads NaN, not what the previous block left.
inline void poison_shared(Launch& launch) {
    for (auto [p, n] : static_shared) {
        for (std::size_t i = 0; i < n; ++i) p[i] = 0xff;
    }
    if (!launch.shared.empty()) std::memset(launch.shared.data(), 0xff, launch.shared.size());
}

#ifndef SK_HOST_THREADS
// --- fibers --------------------------------------------------------------------------------
struct Barrier {
    unsigned arrived = 0;
    unsigned live = 0;  // members that have not exited
};

struct Fibers {
    std::vector<Thread> threads;
    std::vector<Barrier> barriers;  // [0]: the block; [1 + w]: warp w
    ucontext_t scheduler{};  // zeroed: ASan's swapcontext reads uc_stack of the target
    const void* scheduler_stack = nullptr;
    std::size_t scheduler_stack_size = 0;
    unsigned live = 0;
    Policy policy = ASCENDING;
    unsigned long long seed = 1;
    void (*body)(void*) = nullptr;
    void* closure = nullptr;
};
inline Fibers* fibers = nullptr;

// ASan is told of every switch (its stack bounds); the worker runs with
// detect_stack_use_after_return=0, so there are no fake stacks to hand over.
inline void to_scheduler() {
#ifdef SK_ASAN
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, fibers->scheduler_stack, fibers->scheduler_stack_size);
#endif
    swapcontext(&self->context, &fibers->scheduler);
#ifdef SK_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

// Members of barrier b, the block (b == 0) or warp b - 1, that have not exited.
inline unsigned expected(unsigned b) { return fibers->barriers[b].live; }

inline void release_if_complete(unsigned b) {
    if (fibers->barriers[b].arrived != 0 && fibers->barriers[b].arrived == expected(b)) {
        fibers->barriers[b].arrived = 0;
        for (Thread& t : fibers->threads) {
            if (t.waiting == static_cast<int>(b)) t.waiting = -1;
        }
    }
}

inline void wait(unsigned b) {
    self->waiting = static_cast<int>(b);
    ++fibers->barriers[b].arrived;
    release_if_complete(b);
    to_scheduler();  // even when released: the policy picks who goes on
}

inline void syncthreads() { wait(0); }
inline void syncwarp() { wait(1 + self->index / 32); }

inline void fiber_main(int index) {
#ifdef SK_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &fibers->scheduler_stack, &fibers->scheduler_stack_size);
#endif
    self = &fibers->threads[index];
    fibers->body(fibers->closure);
    self->done = true;
    const unsigned warp = 1 + self->index / 32;
    --fibers->barriers[0].live;
    --fibers->barriers[warp].live;
    release_if_complete(0);
    release_if_complete(warp);
    to_scheduler();
    fail("a finished fiber was resumed");
}

inline bool runnable(int i) { return !fibers->threads[i].done && fibers->threads[i].waiting < 0; }

inline int pick() {
    const int n = static_cast<int>(fibers->threads.size());
    if (fibers->policy == ASCENDING) {
        for (int i = 0; i < n; ++i) if (runnable(i)) return i;
        return -1;
    }
    if (fibers->policy == DESCENDING) {
        for (int i = n - 1; i >= 0; --i) if (runnable(i)) return i;
        return -1;
    }
    int count = 0;
    for (int i = 0; i < n; ++i) count += runnable(i);
    if (count == 0) return -1;
    fibers->seed = fibers->seed * 6364136223846793005ULL + 1442695040888963407ULL;
    int k = static_cast<int>((fibers->seed >> 33) % static_cast<unsigned long long>(count));
    for (int i = 0; i < n; ++i) {
        if (runnable(i) && k-- == 0) return i;
    }
    return -1;
}

inline void run_block(Fibers& f) {
    for (unsigned i = 0; i < f.threads.size(); ++i) {
        Thread& t = f.threads[i];
        t.done = false;
        t.waiting = -1;
        getcontext(&t.context);
        t.context.uc_stack.ss_sp = t.stack;
        t.context.uc_stack.ss_size = t.stack_size;
        t.context.uc_link = nullptr;
        makecontext(&t.context, reinterpret_cast<void (*)()>(&fiber_main), 1, static_cast<int>(i));
    }
    const unsigned n = f.threads.size();
    for (unsigned b = 0; b < f.barriers.size(); ++b) {
        f.barriers[b].arrived = 0;
        f.barriers[b].live = b == 0 ? n : std::min(32u, n - 32 * (b - 1));
    }
    for (;;) {
        const int i = pick();
        if (i < 0) break;
        Thread& t = f.threads[i];
        self = &t;
#ifdef SK_ASAN
        void* fake = nullptr;
        __sanitizer_start_switch_fiber(&fake, t.stack, t.stack_size);
#endif
        swapcontext(&f.scheduler, &t.context);
#ifdef SK_ASAN
        __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    }
    for (const Thread& t : f.threads) {
        if (!t.done) fail("deadlock: threads wait at a barrier that the others never reach");
    }
}

template <typename Body>
void run(Launch& launch, Body& body, Policy policy, unsigned long long seed) {
    Fibers f;
    fibers = &f;
    f.policy = policy;
    f.seed = seed;
    f.closure = &body;
    f.body = [](void* c) { (*static_cast<Body*>(c))(); };
    const unsigned n = launch.block.x;
    f.threads.resize(n);
    f.barriers.resize(1 + (n + 31) / 32);
    constexpr std::size_t STACK = 256 * 1024;
    for (unsigned i = 0; i < n; ++i) {
        Thread& t = f.threads[i];
        t.index = i;
        t.idx.x = i;
        t.stack_size = STACK;
        t.stack = mmap(nullptr, STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (t.stack == MAP_FAILED) fail("no memory for fiber stacks");
    }
    for (unsigned b = 0; b < launch.grid.x; ++b) {
        launch.block_idx.x = b;
        poison_shared(launch);
        run_block(f);
    }
    for (Thread& t : f.threads) munmap(t.stack, t.stack_size);
    fibers = nullptr;
}
#else
// --- threads (ThreadSanitizer) -----------------------------------------------------------
struct Threads {
    std::unique_ptr<std::barrier<>> block;
    std::vector<std::unique_ptr<std::barrier<>>> warps;
};
inline Threads* threads = nullptr;

inline void syncthreads() { threads->block->arrive_and_wait(); }
inline void syncwarp() { threads->warps[self->index / 32]->arrive_and_wait(); }

template <typename Body>
void run(Launch& launch, Body& body, Policy, unsigned long long) {
    const unsigned n = launch.block.x;
    for (unsigned b = 0; b < launch.grid.x; ++b) {
        launch.block_idx.x = b;
        poison_shared(launch);
        Threads t;
        t.block = std::make_unique<std::barrier<>>(n);
        for (unsigned w = 0; w < (n + 31) / 32; ++w) {
            t.warps.push_back(std::make_unique<std::barrier<>>(std::min(32u, n - 32 * w)));
        }
        threads = &t;
        std::vector<std::thread> pool;
        for (unsigned i = 0; i < n; ++i) {
            pool.emplace_back([&body, &t, i] {
                Thread me;
                me.index = i;
                me.idx.x = i;
                self = &me;
                body();
                t.block->arrive_and_drop();  // exited threads no longer count at barriers
                t.warps[i / 32]->arrive_and_drop();
            });
        }
        for (std::thread& th : pool) th.join();
        threads = nullptr;
    }
}
#endif

// Lane `self` exchanges `v` with lane `lane ^ offset` of its warp (every lane takes part).
template <typename T>
T shfl_xor(unsigned mask, T v, int offset) {
    static_assert(sizeof(T) <= sizeof(unsigned long long) && std::is_trivially_copyable_v<T>);
    if (mask != 0xffffffffu) fail("__shfl_xor_sync with a partial mask");
    if (launch_state->block.x % 32 != 0) fail("__shfl_xor_sync in a block of partial warps");
    const unsigned me = self->index, partner = (me & ~31u) | ((me & 31u) ^ static_cast<unsigned>(offset));
    unsigned long long word = 0;
    std::memcpy(&word, &v, sizeof(T));
    launch_state->exchange[me] = word;
    syncwarp();
    word = launch_state->exchange[partner];
    syncwarp();  // nobody writes its slot again before the partner has read it
    T out;
    std::memcpy(&out, &word, sizeof(T));
    return out;
}

inline thread_local char error[256];

// Calls `kernel` with the arguments args[i] (pointers to the values, as cuLaunchKernel's
// kernelParams); sizes[i] is each value's size in bytes, checked against the parameter's.
template <typename... P, std::size_t... I>
void call(void (*kernel)(P...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<P>*>(args[I])...);
}

template <typename... P>
int launch(void (*kernel)(P...), unsigned grid, unsigned block, unsigned long long shared, void** args,
           const unsigned long long* sizes, int nargs, int policy, unsigned long long seed) {
    if (nargs != static_cast<int>(sizeof...(P))) {
        std::snprintf(error, sizeof error, "%d arguments for a kernel of %zu parameters", nargs, sizeof...(P));
        return 1;
    }
    const std::size_t want[] = {sizeof(P)...};
    for (int i = 0; i < nargs; ++i) {
        if (want[i] != sizes[i]) {
            std::snprintf(error, sizeof error, "argument %d has %llu bytes, the parameter %zu", i, sizes[i],
                          want[i]);
            return 1;
        }
    }
    if (grid == 0 || block == 0 || block > 1024) {
        std::snprintf(error, sizeof error, "invalid launch: %u blocks of %u threads", grid, block);
        return 1;
    }
    Launch state;
    state.grid.x = grid;
    state.block.x = block;
    state.shared.resize(shared);
    state.exchange.resize(block);
    launch_state = &state;
    auto body = [&] { call(kernel, args, std::index_sequence_for<P...>{}); };
    run(state, body, static_cast<Policy>(policy), seed);
    launch_state = nullptr;
    return 0;
}

inline const dim3& block_idx() { return launch_state->block_idx; }

}  // namespace sk_host

#define threadIdx (sk_host::self->idx)
#define blockIdx (sk_host::block_idx())
#define blockDim (sk_host::launch_state->block)
#define gridDim (sk_host::launch_state->grid)

inline void __syncthreads() { sk_host::syncthreads(); }
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int offset) {
    return sk_host::shfl_xor(mask, v, offset);
}

#endif  // SK_CUDA_HOST_H
