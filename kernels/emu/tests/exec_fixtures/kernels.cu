#include <cuda_fp16.h>
#include <cuda_bf16.h>

// Block reduction: warp shuffles, shared memory, one atomic per block.
extern "C" __global__ void block_sum(const float* x, float* out, unsigned* count, int n) {
    __shared__ float warp_sums[32];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = i < n ? x[i] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        int nw = blockDim.x >> 5;
        v = lane < nw ? warp_sums[lane] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (lane == 0) {
            atomicAdd(out, v);
            atomicAdd(count, 1u);
        }
    }
}

// Shared-memory atomics and a histogram.
extern "C" __global__ void histogram(const unsigned* x, unsigned* hist, int n) {
    __shared__ unsigned h[16];
    if (threadIdx.x < 16) h[threadIdx.x] = 0;
    __syncthreads();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        atomicAdd(&h[x[i] & 15], 1u);
    __syncthreads();
    if (threadIdx.x < 16) atomicAdd(&hist[threadIdx.x], h[threadIdx.x]);
}

// Divergent loops: each thread iterates a data-dependent number of times with an inner branch;
// after the loop the warp must be reconverged for the ballot.
extern "C" __global__ void collatz(const unsigned* x, unsigned* steps, unsigned* ballots) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned v = x[i], s = 0;
    while (v != 1) {
        if (v & 1) v = 3 * v + 1; else v >>= 1;
        s++;
    }
    steps[i] = s;
    unsigned b = __ballot_sync(0xffffffffu, s & 1);
    if ((threadIdx.x & 31) == 0) ballots[i >> 5] = b;
}

// Local array with dynamic indexing.
extern "C" __global__ void local_array(const int* idx, float* out) {
    float arr[24];
    int t = threadIdx.x;
    #pragma unroll 1
    for (int k = 0; k < 24; k++) arr[k] = (float)(k * 100 + t);
    out[t] = arr[idx[t] % 24] + arr[(idx[t] + 5) % 24];
}

__device__ __noinline__ float poly(float x, int k) {
    float r = 0.0f;
    for (int j = 0; j <= k; j++) r = r * x + (float)j;
    return r;
}

// Device function call.
extern "C" __global__ void call_fn(const float* x, float* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = poly(x[i], i % 4) + poly(1.0f, 2);
}

// Reads shared memory that nobody wrote: must see the 0xFF poison.
extern "C" __global__ void read_poison(unsigned* out) {
    __shared__ unsigned s[64];
    if (threadIdx.x == 0) s[0] = 7;
    __syncthreads();
    out[threadIdx.x] = s[threadIdx.x];
}

// Deliberate out-of-bounds store: one past the end.
extern "C" __global__ void oob_store(float* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) out[i] = 1.0f;
}

// Warp intrinsics: vote, match, redux, activemask, __syncthreads_or/count.
extern "C" __global__ void warp_ops(const unsigned* x, unsigned* out) {
    unsigned v = x[threadIdx.x];
    unsigned lane = threadIdx.x & 31;
    unsigned any = __any_sync(0xffffffffu, v > 100);
    unsigned all = __all_sync(0xffffffffu, v > 0);
    unsigned mt = __match_any_sync(0xffffffffu, v & 3);
    unsigned sum = __reduce_add_sync(0xffffffffu, v);
    unsigned mx = __reduce_max_sync(0xffffffffu, v);
    int orr = __syncthreads_or(v == 77);
    int cnt = __syncthreads_count(v & 1);
    unsigned am = 0;
    if (lane < 10) am = __activemask();
    unsigned up = __shfl_up_sync(0xffffffffu, v, 3);
    unsigned idx = __shfl_sync(0xffffffffu, v, (lane * 7) & 31);
    unsigned seg = __shfl_down_sync(0xffffffffu, v, 2, 8);
    unsigned* o = out + threadIdx.x * 12;
    o[0] = any; o[1] = all; o[2] = mt; o[3] = sum; o[4] = mx; o[5] = orr; o[6] = cnt; o[7] = am;
    o[8] = up; o[9] = idx; o[10] = seg; o[11] = __popc(v) + __clz(v) + __brev(v) + __ffs(v);
}

// Float math and conversions.
extern "C" __global__ void float_ops(const float* x, float* out, unsigned* bits) {
    int t = threadIdx.x;
    float v = x[t];
    float* o = out + t * 8;
    o[0] = __fadd_rz(v, 1e-8f);
    o[1] = __fmul_rd(v, 3.3f);
    o[2] = __fsqrt_rn(fabsf(v));
    o[3] = __fdiv_rn(1.0f, v);
    o[4] = fmaxf(v, 0.5f) + fminf(v, -0.5f);
    o[5] = rintf(v) + truncf(v) + floorf(v) + ceilf(v);
    o[6] = __bfloat162float(__float2bfloat16_rn(v));
    o[7] = __half2float(__float2half_rn(v));
    unsigned* b = bits + t * 4;
    b[0] = (unsigned)(int)v;
    b[1] = (unsigned)__float2int_rn(v * 10.0f);
    __nv_bfloat162 p = __floats2bfloat162_rn(v, -v);
    b[2] = *(unsigned*)&p;
    b[3] = (unsigned)(long long)(v * 1e6f);
}
