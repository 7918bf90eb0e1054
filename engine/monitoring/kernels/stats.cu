// Per-frame optical-health statistics of a batch of frames on an NVIDIA GPU.
//
// The definitions are those of engine/stats.py (its module docstring); engine/gpu_stats.py compiles this
// file with NVRTC (cupy.RawModule), launches it and turns the accumulators into the named statistics.
//
// Input: N frames, BGR uint8, contiguous (N, H, W, 3), in device memory.
// Work per batch, in stream order (no host synchronisation in between):
//   0. the accumulators are zeroed (a memset on the host side);
//   1. frame_stats_pixels: reads the frames; writes the luma plane (N, H, W) uint8 and adds the
//      histograms, the 8 x 8 grid sums, the grid cells' luma histograms and the Immerkaer Laplacian sum
//      into the accumulators;
//   2. frame_stats_focus: reads the luma plane and the Laplacian sum of launch 1 (for the mask's noise
//      threshold); adds the mask's pixel count and the sums of F^2 and C^2 into the accumulators.
// Both launches: grid (ceil(W / TILE), ceil(H / TILE), N), block (BX, BY); a block owns a TILE x TILE
// tile of one frame and each thread TILE / BY of its rows, in one column.
//
// Accumulators, ACC_STRIDE 64-bit words per frame (engine/gpu_stats.py reads them with the same layout):
//   [ACC_HIST, +1024)  histograms of luma, b, g, r, 256 bins each: pixel counts
//   [ACC_GRID, +64)    sum of luma in each 8 x 8 grid cell, row-major: exact integers
//   ACC_LAP            sum of |Y * L| over the interior: an exact integer
//   ACC_COUNT          pixels in the focus mask |C| >= max(1, noise)
//   ACC_EF, ACC_EC     sums of F^2 and C^2 over the mask, as IEEE doubles (bit patterns)
//   [ACC_CELL, +8192)  the luma histogram of each 8 x 8 grid cell (for the cell medians): 64 x 256 pixel
//                      counts, cell-major, as 32-bit words, two to a 64-bit word in memory order (a cell would
//                      need 2^32 pixels to overflow one); half the bytes to clear and copy back of 64-bit counts
// Every sum but ACC_EF and ACC_EC is an integer and so exact whatever the order of the atomic additions; the
// two band energies add float products in double precision, as OpenCV's masked mean does.

#define ACC_HIST 0
#define ACC_GRID 1024
#define ACC_LAP 1088
#define ACC_COUNT 1089
#define ACC_EF 1090
#define ACC_EC 1091
#define ACC_CELL 1092
#define ACC_STRIDE 9284

#define TILE 32             // a block's tile: TILE x TILE pixels
#define BX 32               // threads per block: BX x BY
#define BY 8
#define THREADS (BX * BY)
#define WARPS (THREADS / 32)
#define ROWS (TILE / BY)    // rows of the tile per thread

#define R1 4                // radius of the sigma-1 Gaussian: 9 taps, the size OpenCV picks for float images
#define R2 8                // sigma 2: 17 taps (ksize = round(8 sigma + 1) | 1 for CV_32F)

// The taps of cv2.getGaussianKernel(9, 1.0, CV_32F) and cv2.getGaussianKernel(17, 2.0, CV_32F), from the
// centre outwards (the kernels are symmetric); tests/engine/test_gpu_stats.py checks them against OpenCV.
__constant__ float GAUSS_1[R1 + 1] = {
    3.989434838e-01f, 2.419714481e-01f, 5.399112776e-02f, 4.431861453e-03f, 1.338306174e-04f};
__constant__ float GAUSS_2[R2 + 1] = {
    1.994746476e-01f, 1.760357618e-01f, 1.209874898e-01f, 6.475993991e-02f, 2.699595876e-02f,
    8.764304221e-03f, 2.215963090e-03f, 4.363490152e-04f, 6.691629096e-05f};

// sqrt(pi / 2), the double nearest to it (as Python's math.sqrt(math.pi / 2)).
#define SQRT_HALF_PI 1.2533141373155001

// OpenCV's BORDER_REFLECT (fedcba|abcdefgh|hgfedcb), applied again where a kernel is wider than the frame,
// as cv::borderInterpolate does.
__device__ __forceinline__ int reflect(int p, int n)
{
    if (n == 1) return 0;
    while (p < 0 || p >= n) p = p < 0 ? -p - 1 : 2 * n - p - 1;
    return p;
}

// The grid cell of row (or column) p of a frame of n rows: the i with floor(i n / 8) <= p < floor((i + 1) n / 8).
__device__ __forceinline__ int grid_cell(int p, int n)
{
    return (int)((8LL * (p + 1) - 1) / n);
}

// ------------------------------------------------------------------------------------------------ launch 1
// Reads:  bgr (N, H, W, 3) uint8.
// Writes: luma (N, H, W) uint8; adds into acc[n]: ACC_HIST, ACC_GRID, ACC_LAP, ACC_CELL.
// Shared: the tile's luma with a one-pixel halo (for the Laplacian), block-private histograms and grid sums,
// and block-private luma histograms of the (at most 2 x 2) grid cells the tile overlaps.
// The cell histograms are privatised only where a tile overlaps at most 2 x 2 cells, which is every tile once
// the frame is 248 pixels or more a side (a cell is then at least 31 pixels, so 32 rows or columns meet at
// most two); privatising the 8 x 8 cells any tile of a small frame may meet would need 64 KB of shared memory,
// more than a block may have statically and a fourfold cut in the blocks per SM. The tiles of smaller frames
// (a few thousand pixels a block at most) add each pixel straight into the frame's global cell histograms.

#define P1 (TILE + 2)

// At most 32 registers a thread (ptxas needs 34 unbounded, without spilling at 32): 8 blocks, 2048 threads, fit
// an SM's registers, and their 8 x 13 KB of shared memory fit too.
extern "C" __global__ void __launch_bounds__(THREADS, 8)
frame_stats_pixels(const unsigned char* __restrict__ bgr, unsigned char* __restrict__ luma,
                   unsigned long long* __restrict__ acc, const int height, const int width)
{
    __shared__ int tile[P1][P1];
    __shared__ unsigned int hist[4 * 256];
    __shared__ unsigned int grid[64];
    __shared__ unsigned int cell_hist[4][256];  // the tile's cells: index 2 * (row - cy0) + (column - cx0)
    __shared__ unsigned int lap_warp[WARPS];

    const int tid = threadIdx.y * BX + threadIdx.x;
    const int x0 = blockIdx.x * TILE, y0 = blockIdx.y * TILE;
    const size_t plane = (size_t)height * (size_t)width;
    const unsigned char* src = bgr + (size_t)blockIdx.z * plane * 3;
    unsigned char* dst = luma + (size_t)blockIdx.z * plane;
    unsigned long long* out = acc + (size_t)blockIdx.z * ACC_STRIDE;
    unsigned int* cells = (unsigned int*)(out + ACC_CELL);

    // The grid cells of the tile's first and last row and column (the same for every thread of the block).
    const int cy0 = grid_cell(y0, height), cy1 = grid_cell(min(y0 + TILE, height) - 1, height);
    const int cx0 = grid_cell(x0, width), cx1 = grid_cell(min(x0 + TILE, width) - 1, width);
    const bool private_cells = cy1 - cy0 <= 1 && cx1 - cx0 <= 1;

    for (int i = tid; i < 4 * 256; i += THREADS) {
        hist[i] = 0u;
        cell_hist[i >> 8][i & 255] = 0u;
    }
    if (tid < 64) grid[tid] = 0u;
    __syncthreads();

    // Luma of the tile and its halo; histograms and the luma plane for the tile's own pixels only (the halo
    // belongs to the neighbouring blocks). Outside the frame the tile holds 0, never read below.
    for (int i = tid; i < P1 * P1; i += THREADS) {
        const int ly = i / P1, lx = i - ly * P1;
        const int gy = y0 + ly - 1, gx = x0 + lx - 1;
        int y = 0;
        if (gy >= 0 && gy < height && gx >= 0 && gx < width) {
            const size_t p = (size_t)gy * (size_t)width + (size_t)gx;
            const unsigned int b = src[3 * p], g = src[3 * p + 1], r = src[3 * p + 2];
            y = (int)((19596u * r + 38470u * g + 7470u * b + 32768u) >> 16);  // at most 255
            if (ly >= 1 && ly <= TILE && lx >= 1 && lx <= TILE) {
                atomicAdd(&hist[y], 1u);
                atomicAdd(&hist[256 + b], 1u);
                atomicAdd(&hist[512 + g], 1u);
                atomicAdd(&hist[768 + r], 1u);
                dst[p] = (unsigned char)y;
            }
        }
        tile[ly][lx] = y;
    }
    __syncthreads();

    // Grid sums (a thread's pixels share one column, so one grid column; they change grid row at most a few
    // times) and |Y * L| over the interior (1 <= x <= W - 2, 1 <= y <= H - 2), whose neighbours are all in
    // the frame and so in the tile.
    const int lx = threadIdx.x + 1;
    const int gx = x0 + threadIdx.x;
    const int cx = grid_cell(gx, width);
    unsigned int lap = 0u, cell_sum = 0u;
    int cell = -1;
    for (int k = 0; k < ROWS; ++k) {
        const int ly = threadIdx.y + k * BY + 1;
        const int gy = y0 + ly - 1;
        if (gx >= width || gy >= height) continue;
        const int v = tile[ly][lx];
        const int cy = grid_cell(gy, height);
        const int c = cy * 8 + cx;
        if (private_cells)
            atomicAdd(&cell_hist[2 * (cy - cy0) + (cx - cx0)][v], 1u);
        else
            atomicAdd(&cells[c * 256 + v], 1u);
        if (c != cell) {
            if (cell >= 0) atomicAdd(&grid[cell], cell_sum);
            cell = c;
            cell_sum = 0u;
        }
        cell_sum += (unsigned int)v;
        if (gx >= 1 && gx <= width - 2 && gy >= 1 && gy <= height - 2) {
            const int s = tile[ly - 1][lx - 1] - 2 * tile[ly - 1][lx] + tile[ly - 1][lx + 1]
                        - 2 * tile[ly][lx - 1] + 4 * v - 2 * tile[ly][lx + 1]
                        + tile[ly + 1][lx - 1] - 2 * tile[ly + 1][lx] + tile[ly + 1][lx + 1];
            lap += (unsigned int)abs(s);  // at most 4080 per pixel
        }
    }
    if (cell >= 0) atomicAdd(&grid[cell], cell_sum);

    for (int off = 16; off > 0; off >>= 1) lap += __shfl_down_sync(0xffffffffu, lap, off);
    if ((tid & 31) == 0) lap_warp[tid >> 5] = lap;
    __syncthreads();

    // The block's partial sums into the frame's accumulators.
    if (tid == 0) {
        unsigned long long s = 0ull;
        for (int w = 0; w < WARPS; ++w) s += lap_warp[w];
        if (s) atomicAdd(&out[ACC_LAP], s);
    }
    for (int i = tid; i < 4 * 256; i += THREADS)
        if (hist[i]) atomicAdd(&out[ACC_HIST + i], (unsigned long long)hist[i]);
    if (tid < 64 && grid[tid]) atomicAdd(&out[ACC_GRID + tid], (unsigned long long)grid[tid]);
    if (private_cells) {
        for (int i = tid; i < 4 * 256; i += THREADS) {
            const unsigned int n = cell_hist[i >> 8][i & 255];
            if (n) atomicAdd(&cells[((cy0 + (i >> 9)) * 8 + cx0 + ((i >> 8) & 1)) * 256 + (i & 255)], n);
        }
    }
}

// ------------------------------------------------------------------------------------------------ launch 2
// Reads:  luma (N, H, W) uint8 (launch 1's output); acc[n][ACC_LAP] (launch 1's complete sum, for the noise).
// Writes: adds into acc[n]: ACC_COUNT, ACC_EF, ACC_EC.
// Shared: the tile's luma with an R2 halo (reflected at the frame's borders), then the horizontal passes of
// both Gaussians; the vertical passes go straight to the masked sums.
// As cv2.GaussianBlur on a float image: separable, horizontal pass first, float arithmetic, the border
// reflected for both passes (reflecting the rows of the horizontal result is filtering the reflected rows).

#define P2 (TILE + 2 * R2)

extern "C" __global__ void __launch_bounds__(THREADS)
frame_stats_focus(const unsigned char* __restrict__ luma, unsigned long long* __restrict__ acc,
                  const int height, const int width)
{
    __shared__ float tile[P2][P2];
    __shared__ float row1[P2][TILE];
    __shared__ float row2[P2][TILE];
    __shared__ double ef_warp[WARPS];
    __shared__ double ec_warp[WARPS];
    __shared__ unsigned int count_warp[WARPS];

    const int tid = threadIdx.y * BX + threadIdx.x;
    const int x0 = blockIdx.x * TILE, y0 = blockIdx.y * TILE;
    const unsigned char* src = luma + (size_t)blockIdx.z * (size_t)height * (size_t)width;
    unsigned long long* out = acc + (size_t)blockIdx.z * ACC_STRIDE;

    // The mask's threshold max(1, noise), with the noise as engine/stats.py computes it from the same exact
    // sum; compared as a float, as OpenCV compares a float image with a scalar.
    double noise = 0.0;
    if (width >= 3 && height >= 3)
        noise = SQRT_HALF_PI * (double)out[ACC_LAP] / (6.0 * (double)(width - 2) * (double)(height - 2));
    const float threshold = (float)fmax(1.0, noise);

    for (int i = tid; i < P2 * P2; i += THREADS) {
        const int ly = i / P2, lx = i - ly * P2;
        const int gy = reflect(y0 + ly - R2, height), gx = reflect(x0 + lx - R2, width);
        tile[ly][lx] = (float)src[(size_t)gy * (size_t)width + (size_t)gx];
    }
    __syncthreads();

    for (int i = tid; i < P2 * TILE; i += THREADS) {
        const int r = i / TILE, c = i - r * TILE;
        const float* t = &tile[r][c + R2];
        float s1 = GAUSS_1[0] * t[0];
#pragma unroll
        for (int k = 1; k <= R1; ++k) s1 += GAUSS_1[k] * (t[-k] + t[k]);
        float s2 = GAUSS_2[0] * t[0];
#pragma unroll
        for (int k = 1; k <= R2; ++k) s2 += GAUSS_2[k] * (t[-k] + t[k]);
        row1[r][c] = s1;
        row2[r][c] = s2;
    }
    __syncthreads();

    const int c = threadIdx.x;
    const int gx = x0 + c;
    double ef = 0.0, ec = 0.0;
    unsigned int count = 0u;
    for (int k = 0; k < ROWS; ++k) {
        const int r = threadIdx.y + k * BY;
        const int gy = y0 + r;
        if (gx >= width || gy >= height) continue;
        const int m = r + R2;  // this row in the haloed arrays
        float g1 = GAUSS_1[0] * row1[m][c];
#pragma unroll
        for (int j = 1; j <= R1; ++j) g1 += GAUSS_1[j] * (row1[m - j][c] + row1[m + j][c]);
        float g2 = GAUSS_2[0] * row2[m][c];
#pragma unroll
        for (int j = 1; j <= R2; ++j) g2 += GAUSS_2[j] * (row2[m - j][c] + row2[m + j][c]);
        const float fine = tile[m][c + R2] - g1;
        const float coarse = fabsf(g1 - g2);
        if (coarse >= threshold) {
            const float f2 = fine * fine, c2 = coarse * coarse;  // float products, as cv2.multiply
            ef += (double)f2;
            ec += (double)c2;
            ++count;
        }
    }

    for (int off = 16; off > 0; off >>= 1) {
        ef += __shfl_down_sync(0xffffffffu, ef, off);
        ec += __shfl_down_sync(0xffffffffu, ec, off);
        count += __shfl_down_sync(0xffffffffu, count, off);
    }
    if ((tid & 31) == 0) {
        ef_warp[tid >> 5] = ef;
        ec_warp[tid >> 5] = ec;
        count_warp[tid >> 5] = count;
    }
    __syncthreads();
    if (tid == 0) {
        double sf = 0.0, sc = 0.0;
        unsigned long long sn = 0ull;
        for (int w = 0; w < WARPS; ++w) {
            sf += ef_warp[w];
            sc += ec_warp[w];
            sn += count_warp[w];
        }
        if (sn) {
            atomicAdd(&out[ACC_COUNT], sn);
            atomicAdd((double*)&out[ACC_EF], sf);
            atomicAdd((double*)&out[ACC_EC], sc);
        }
    }
}
