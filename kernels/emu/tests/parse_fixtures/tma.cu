// Parser fixture: __grid_constant__ CUtensorMap param, TMA load into dynamic shared memory with an
// mbarrier, bulk tensor store, elect.sync, fences, cluster dims, a loop with #pragma unroll 1.
#include <cuda.h>
#include <cstdint>

__global__ void __cluster_dims__(1, 1, 1) __launch_bounds__(128, 1)
tma_copy(const __grid_constant__ CUtensorMap in_map, const __grid_constant__ CUtensorMap out_map, int tiles) {
    extern __shared__ __align__(1024) uint8_t dsmem[];
    __shared__ __align__(8) uint64_t full;
    uint32_t bar = (uint32_t)__cvta_generic_to_shared(&full);
    uint32_t dst = (uint32_t)__cvta_generic_to_shared(dsmem);
    uint32_t lane_pred;
    asm volatile("{\n .reg .pred P;\n elect.sync _|P, 0xffffffff;\n selp.u32 %0, 1, 0, P;\n}\n" : "=r"(lane_pred));
    if (threadIdx.x == 0) {
        asm volatile("prefetch.tensormap [%0];" :: "l"(&in_map) : "memory");
        asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" :: "r"(bar));
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
#pragma unroll 1
    for (int t = 0; t < tiles; ++t) {
        if (threadIdx.x == 0 && lane_pred) {
            asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" :: "r"(bar), "r"(64 * 64));
            asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];"
                         :: "r"(dst), "l"(&in_map), "r"(t * 64), "r"(0), "r"(bar) : "memory");
        }
        asm volatile("{\n .reg .pred P1;\n LAB_WAIT:\n"
                     " mbarrier.try_wait.parity.shared::cta.b64 P1, [%0], %1;\n"
                     " @P1 bra DONE;\n bra LAB_WAIT;\n DONE:\n}\n" :: "r"(bar), "r"(t & 1) : "memory");
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
        __syncthreads();
        if (threadIdx.x == 0) {
            asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];"
                         :: "l"(&out_map), "r"(t * 64), "r"(0), "r"(dst) : "memory");
            asm volatile("cp.async.bulk.commit_group;");
            asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");
        }
        __syncthreads();
    }
    uint32_t dyn;
    asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(dyn));
    uint32_t lane;
    asm("mov.u32 %0, %%laneid;" : "=r"(lane));
    if (dyn == 0 && lane == 40) asm volatile("trap;");
}
