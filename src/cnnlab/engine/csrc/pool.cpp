// A 2x2 max-pool (stride 2, valid) with the ReLU around it, in one pass each way, for the convolutions after
// the first (cnnlab/kernels.py: relu_pool). Part of the module cnnlab._kernels (kernels.cpp registers it).
//
// torch runs Conv2D(relu) -> MaxPool2D(2) as four passes over the convolution's full-size output (the ReLU,
// the pool, the pool's backward with its zero fill, the ReLU's backward): for cnn2's second convolution that
// map is 128x64x11x11 floats, 4 MB a batch. relu(max(a, b, c, d)) = max(relu(a), ..., relu(d)), so here each
// pooled value is the largest of its four candidates, clamped at zero, and one byte says which candidate won
// (4: none, the output is zero and so is every gradient). The backward pass writes the whole input gradient
// once: the winner gets the gradient, the three others (and a last odd row or column) zero. Ties go to the
// first candidate in (row, column) order and a gradient passes only where the maximum is > 0, as in torch.
//
// Layout: (B, H, W, C) contiguous, i.e. torch's channels_last; the loops run along C, which GCC vectorises
// (target_clones: AVX-512, AVX2, baseline x86-64).

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define POOL_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define POOL_CLONES
#endif

namespace {

constexpr uint8_t NONE = 4;  // which: no candidate is above zero (with the ReLU), no gradient

// One pooled row (all its columns): four candidate rows of C floats each per output pixel.
POOL_CLONES void forward_row(const float* __restrict top, const float* __restrict bottom, float* __restrict out,
                             uint8_t* __restrict which, int64_t pooled_w, int64_t channels, bool relu) {
  for (int64_t px = 0; px < pooled_w; ++px) {
    const float *a = top + 2 * px * channels, *b = a + channels;
    const float *c = bottom + 2 * px * channels, *d = c + channels;
    float* o = out + px * channels;
    uint8_t* w = which + px * channels;
    for (int64_t k = 0; k < channels; ++k) {
      float m = a[k];
      uint8_t won = 0;
      if (b[k] > m) m = b[k], won = 1;
      if (c[k] > m) m = c[k], won = 2;
      if (d[k] > m) m = d[k], won = 3;
      const bool off = relu && !(m > 0.f);
      o[k] = off ? 0.f : m;
      w[k] = off ? NONE : won;
    }
  }
}

POOL_CLONES void backward_row(const float* __restrict grad, const uint8_t* __restrict which, float* __restrict top,
                              float* __restrict bottom, int64_t pooled_w, int64_t channels) {
  for (int64_t px = 0; px < pooled_w; ++px) {
    const float* g = grad + px * channels;
    const uint8_t* w = which + px * channels;
    float *a = top + 2 * px * channels, *b = a + channels;
    float *c = bottom + 2 * px * channels, *d = c + channels;
    for (int64_t k = 0; k < channels; ++k) {
      a[k] = w[k] == 0 ? g[k] : 0.f;
      b[k] = w[k] == 1 ? g[k] : 0.f;
      c[k] = w[k] == 2 ? g[k] : 0.f;
      d[k] = w[k] == 3 ? g[k] : 0.f;
    }
  }
}

void check(const torch::Tensor& t, const char* what) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.is_contiguous() && t.dim() == 4,
              "relu_pool: ", what, " must be a contiguous (B, H, W, C) float32 CPU tensor");
}

}  // namespace

// input (B, H, W, C) -> out (B, H/2, W/2, C), which (as out, uint8: 0-3 the winner, 4 none)
std::vector<torch::Tensor> relu_pool_forward(torch::Tensor input, bool relu) {
  check(input, "input");
  const int64_t batch = input.size(0), height = input.size(1), width = input.size(2), channels = input.size(3);
  const int64_t pooled_h = height / 2, pooled_w = width / 2;
  TORCH_CHECK(pooled_h > 0 && pooled_w > 0, "relu_pool: the input is smaller than the 2x2 window");
  auto out = torch::empty({batch, pooled_h, pooled_w, channels}, input.options());
  auto which = torch::empty({batch, pooled_h, pooled_w, channels}, input.options().dtype(torch::kUInt8));
  const float* in = input.data_ptr<float>();
  float* o = out.data_ptr<float>();
  uint8_t* w = which.data_ptr<uint8_t>();
  const int64_t row = width * channels, pooled_row = pooled_w * channels;
  at::parallel_for(0, batch * pooled_h, 8, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {  // r = b * pooled_h + py
      const float* top = in + ((r / pooled_h) * height + 2 * (r % pooled_h)) * row;
      forward_row(top, top + row, o + r * pooled_row, w + r * pooled_row, pooled_w, channels, relu);
    }
  });
  return {out, which};
}

// grad (B, H', W', C), which (as grad) -> the input's gradient (B, height, width, C)
torch::Tensor relu_pool_backward(torch::Tensor grad, torch::Tensor which, int64_t height, int64_t width) {
  check(grad, "grad");
  TORCH_CHECK(which.is_contiguous() && which.scalar_type() == torch::kUInt8 && which.sizes() == grad.sizes(),
              "relu_pool_backward: which must be a contiguous uint8 tensor shaped as grad");
  const int64_t batch = grad.size(0), pooled_h = grad.size(1), pooled_w = grad.size(2), channels = grad.size(3);
  TORCH_CHECK(height / 2 == pooled_h && width / 2 == pooled_w, "relu_pool_backward: shapes disagree");
  auto result = torch::empty({batch, height, width, channels}, grad.options());
  const float* g = grad.data_ptr<float>();
  const uint8_t* w = which.data_ptr<uint8_t>();
  float* gi = result.data_ptr<float>();
  const int64_t row = width * channels, pooled_row = pooled_w * channels;
  const bool odd_w = width % 2, odd_h = height % 2;
  at::parallel_for(0, batch * pooled_h, 8, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / pooled_h, py = r % pooled_h;
      float* top = gi + (b * height + 2 * py) * row;
      backward_row(g + r * pooled_row, w + r * pooled_row, top, top + row, pooled_w, channels);
      if (odd_w) {  // the last column was never pooled: no gradient
        std::memset(top + (width - 1) * channels, 0, channels * sizeof(float));
        std::memset(top + row + (width - 1) * channels, 0, channels * sizeof(float));
      }
      if (odd_h && py == pooled_h - 1) std::memset(top + 2 * row, 0, row * sizeof(float));  // nor the last row
    }
  });
  return result;
}
