#include <cuda_fp16.h>
#include <cuda_bf16.h>

struct Table { float v[16]; int n; };

// __grid_constant__ struct read with a dynamic index (cvta.param + generic loads), generic
// pointers into shared or global memory chosen at run time, dynamic shared memory after static.
extern "C" __global__ void generic_mem(const __grid_constant__ Table t, const int* idx, float* out, int use_shared) {
    __shared__ float st[32];
    extern __shared__ __align__(16) float dyn[];
    int i = threadIdx.x;
    st[i] = (float)(i * 3);
    dyn[i] = (float)(i * 5);
    __syncthreads();
    const float* p = use_shared ? ((i & 1) ? st : dyn) : out + 64;
    float a = t.v[idx[i] % 16] + (float)t.n;
    out[i] = a + p[(i * 7) % 32];
    unsigned dsz;
    asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(dsz));
    if (i == 0) out[32] = (float)dsz;
    if (i == 1) out[33] = (float)(((size_t)dyn) & 15);
}

// 2D blocks and grids.
extern "C" __global__ void grid2d(unsigned* out, int width) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    out[y * width + x] = (blockIdx.y << 24) | (threadIdx.y << 16) | (blockIdx.x << 8) | threadIdx.x;
}

// Half-precision arithmetic.
extern "C" __global__ void half_ops(const unsigned* x, unsigned* out) {
    int t = threadIdx.x;
    unsigned a = x[2 * t], b = x[2 * t + 1];
    __half2 ha = *(__half2*)&a, hb = *(__half2*)&b;
    __nv_bfloat162 ba = *(__nv_bfloat162*)&a, bb = *(__nv_bfloat162*)&b;
    __half2 r0 = __hadd2(ha, hb), r1 = __hmul2(ha, hb), r2 = __hfma2(ha, hb, ha), r3 = __hsub2(ha, hb);
    __nv_bfloat162 r4 = __hadd2(ba, bb), r5 = __hmul2(ba, bb), r6 = __hfma2(ba, bb, bb), r7 = __hmax2(ba, bb);
    __half r8 = __hneg(__low2half(ha));
    unsigned* o = out + 9 * t;
    o[0] = *(unsigned*)&r0; o[1] = *(unsigned*)&r1; o[2] = *(unsigned*)&r2; o[3] = *(unsigned*)&r3;
    o[4] = *(unsigned*)&r4; o[5] = *(unsigned*)&r5; o[6] = *(unsigned*)&r6; o[7] = *(unsigned*)&r7;
    o[8] = *(unsigned short*)&r8;
}

__device__ float atomic_max_float(float* addr, float v) {
    int* a = (int*)addr;
    int old = *a, assumed;
    do {
        assumed = old;
        if (__int_as_float(assumed) >= v) break;
        old = atomicCAS(a, assumed, __float_as_int(v));
    } while (old != assumed);
    return __int_as_float(old);
}

// Atomics of every flavour on global and shared memory.
extern "C" __global__ void atomics(const float* x, float* fmax, unsigned* u, unsigned long long* ull, double* dsum, int* imin) {
    __shared__ unsigned s[4];
    int t = threadIdx.x;
    if (t < 4) s[t] = 0;
    __syncthreads();
    atomic_max_float(fmax, x[t]);
    atomicInc(&u[0], 9);
    atomicDec(&u[1], 100);
    atomicExch(&u[2], (unsigned)t);  // some thread's id
    atomicOr(&u[3], 1u << (t % 32));
    atomicAnd(&u[4], ~(1u << (t % 32)));
    atomicXor(&u[5], (unsigned)t);
    atomicAdd(ull, (unsigned long long)t << 33);
    atomicAdd(dsum, (double)x[t]);
    atomicMin(imin, (int)(x[t] * 100.0f));
    atomicMax(&s[0], (unsigned)t);
    atomicAdd(&s[1], 2u);
    unsigned prev = atomicCAS(&s[2], 0u, (unsigned)t + 1);
    __syncthreads();
    if (t == 0) { u[6] = s[0]; u[7] = s[1]; u[8] = s[2]; }
    if (prev == 0) u[9] = t + 1;
}
