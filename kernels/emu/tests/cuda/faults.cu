// Kernels that are wrong on purpose, beyond the out-of-bounds global store in oob.cu. The
// emulator must refuse each one with a precise error instead of computing something.
//  divergent_shfl:      __shfl_sync with the full mask executed by only the odd lanes
//                       (undefined on hardware; a convergence error in strict mode).
//  divergent_barrier:   __syncthreads (bar.sync 0, an .aligned barrier) inside a branch that
//                       splits every warp (odd lanes only).
//  partial_named_barrier: `bar.sync 1, 128` reached by only 64 threads; the other 64 exit without
//                       arriving, so the barrier can never complete (a deadlock).
//  shared_oob:          a store past the end of the dynamic shared memory given at launch.
//  misaligned_load:     a 4-byte global load from an address that is 2 mod 4.
//  uninit_shared:       reads shared memory nobody wrote: sees the poison pattern (0xFF bytes),
//                       which is what the emulator promises (no error: this one must run).
//  spin_forever:        waits for a flag nobody sets; the instruction budget (Device::set_budget)
//                       must stop it with an error instead of hanging the test.
//  cp_async_early_read: reads a cp.async destination before cp.async.wait_all (a missing wait):
//                       the emulator completes async copies at the latest legal point, so the
//                       early read sees poison; after the wait the data is there.
#include <cstdint>

extern "C" __global__ void divergent_shfl(const uint32_t* __restrict__ in, uint32_t* __restrict__ out) {
  uint32_t v = in[threadIdx.x];
  if (v & 1u) v = __shfl_sync(0xffffffffu, v, 0);
  out[threadIdx.x] = v;
}

extern "C" __global__ void divergent_barrier(const uint32_t* __restrict__ in, uint32_t* __restrict__ out) {
  __shared__ uint32_t s[128];
  uint32_t v = in[threadIdx.x];
  s[threadIdx.x] = v;
  if (threadIdx.x & 1) __syncthreads();
  out[threadIdx.x] = s[(threadIdx.x + 1) & 127];
}

extern "C" __global__ void partial_named_barrier(const uint32_t* __restrict__ in, uint32_t* __restrict__ out) {
  if (threadIdx.x >= 64) return;
  const uint32_t v = in[threadIdx.x];
  asm volatile("bar.sync 1, 128;" ::: "memory");
  out[threadIdx.x] = v;
}

extern "C" __global__ void shared_oob(uint32_t* __restrict__ out, int stride) {
  extern __shared__ uint32_t dyn[];
  dyn[threadIdx.x * stride] = threadIdx.x;
  __syncthreads();
  out[threadIdx.x] = dyn[threadIdx.x];
}

extern "C" __global__ void misaligned_load(const uint8_t* __restrict__ in, uint32_t* __restrict__ out, int offset) {
  out[threadIdx.x] = *reinterpret_cast<const uint32_t*>(in + 4 * threadIdx.x + offset);
}

extern "C" __global__ void uninit_shared(uint32_t* __restrict__ out) {
  __shared__ uint32_t s[64];
  if (threadIdx.x == 0) s[0] = 7u;
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x];
}

extern "C" __global__ void cp_async_early_read(const uint32_t* __restrict__ in, uint32_t* __restrict__ out) {
  __shared__ __align__(16) uint32_t s[128];
  const int t = threadIdx.x;
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(&s[4 * t]));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(in + 4 * t) : "memory");
  asm volatile("cp.async.commit_group;" ::: "memory");
  out[2 * t] = *reinterpret_cast<volatile uint32_t*>(&s[4 * t]);  // too early
  asm volatile("cp.async.wait_all;" ::: "memory");
  out[2 * t + 1] = *reinterpret_cast<volatile uint32_t*>(&s[4 * t]);
}

extern "C" __global__ void spin_forever(const volatile uint32_t* flag, uint32_t* out) {
  uint32_t n = 0;
  while (*flag == 0u) ++n;
  out[threadIdx.x] = n;
}
