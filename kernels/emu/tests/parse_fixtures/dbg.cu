// Parser fixture: compiled with -G (debug): .file/.loc directives and .section debug blocks.
__device__ __noinline__ int twice(int v) { return v * 2; }
__global__ void axpy(float a, const float* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i] + (float)twice(i);
}
