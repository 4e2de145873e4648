// Parser fixture: shuffles, atomics, static/dynamic shared, local arrays, a __noinline__ function,
// a __constant__ table and a global initialised table.
#include <cstdint>

__constant__ float c_scale[4] = {1.0f, 0.5f, 0.25f, 2.0f};
__device__ unsigned int g_tab[4] = {1, 2, 3, 4};
__device__ unsigned int g_counter;

__device__ __noinline__ float mix(float a, float b, int k) {
    return a * c_scale[k & 3] + b;
}

__global__ void __launch_bounds__(256) warp_reduce(const float* __restrict__ x, float* __restrict__ out, int n) {
    __shared__ float partial[8];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = i < n ? x[i] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    unsigned lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < (blockDim.x >> 5) ? partial[lane] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (lane == 0) {
            out[blockIdx.x] = mix(v, 1.5f, blockIdx.y);
            atomicAdd(&g_counter, g_tab[blockIdx.x & 3]);
        }
    }
}

__global__ void dyn_local(const int* __restrict__ idx, float* __restrict__ y, int m) {
    extern __shared__ float smem[];
    float loc[8];
    for (int k = 0; k < 8; ++k) loc[k] = y[k * m + threadIdx.x] * 0.125f;
    smem[threadIdx.x] = loc[idx[threadIdx.x] & 7];
    __syncthreads();
    unsigned ballot = __ballot_sync(0xffffffffu, smem[threadIdx.x ^ 1] > 0.0f);
    if (__syncthreads_or(ballot != 0)) y[threadIdx.x] = smem[(threadIdx.x + 1) % blockDim.x] + (float)__popc(ballot);
    atomicMax((int*)&y[0], (int)ballot);
}
