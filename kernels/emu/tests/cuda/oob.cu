// A deliberate out-of-bounds store: the guard is `i <= n` instead of `i < n`, so exactly one
// thread (global index n) stores one element past the end of `out`. The emulator must fail the
// launch with an out-of-bounds error naming the kernel, CTA, thread, PTX line and address.
#include <cstdint>

extern "C" __global__ void oob_store(const float* __restrict__ in, float* __restrict__ out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i <= n) out[i] = (i < n ? in[i] : 0.0f) * 2.0f;
}
