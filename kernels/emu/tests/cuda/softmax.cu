// Softmax and the approximate math it is built from.
//  softmax_rows: one warp per row of `cols` floats (cols <= 1024): max with shfl.bfly, then
//    e = __expf(x - max) (ex2.approx.ftz after a multiply by log2 e), the sum with shfl.bfly, and
//    p = __fdividef(e, sum) (div.approx). A second output uses exp2f((x - max) * log2e) and a
//    plain division by the sum's reciprocal.
//  approx_math: elementwise __expf(x), exp2f(x), __fdividef(x, y), __frcp_rn(y), rsqrtf(y),
//    __log2f(y) on inputs spanning the interesting ranges (results compared within ulp bounds).
#include <cstdint>

extern "C" __global__ void softmax_rows(const float* __restrict__ x, int rows, int cols, float* __restrict__ p1,
                                        float* __restrict__ p2) {
  const int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
  if (warp >= rows) return;
  const float* xr = x + (size_t)warp * cols;
  float m = -INFINITY;
  for (int c = lane; c < cols; c += 32) m = fmaxf(m, xr[c]);
  for (int o = 16; o; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  float s1 = 0.0f, s2 = 0.0f;
  for (int c = lane; c < cols; c += 32) {
    s1 += __expf(xr[c] - m);
    s2 += exp2f((xr[c] - m) * 1.4426950408889634f);
  }
  for (int o = 16; o; o >>= 1) {
    s1 += __shfl_xor_sync(0xffffffffu, s1, o);
    s2 += __shfl_xor_sync(0xffffffffu, s2, o);
  }
  const float r2 = 1.0f / s2;
  for (int c = lane; c < cols; c += 32) {
    p1[(size_t)warp * cols + c] = __fdividef(__expf(xr[c] - m), s1);
    p2[(size_t)warp * cols + c] = exp2f((xr[c] - m) * 1.4426950408889634f) * r2;
  }
}

// out: 6 floats per element.
extern "C" __global__ void approx_math(const float* __restrict__ x, const float* __restrict__ y, int n,
                                       float* __restrict__ out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float a = x[i], b = y[i];
  float* o = out + 6 * i;
  o[0] = __expf(a);
  o[1] = exp2f(a);
  o[2] = __fdividef(a, b);
  o[3] = __frcp_rn(b);
  o[4] = rsqrtf(fabsf(b));
  o[5] = __log2f(fabsf(b));
}
