// cnnlab's compiled CPU kernels, loaded by cnnlab/kernels.py as the module cnnlab._kernels.
//
// 1. A first convolution fused with the 2x2 max-pool after it (and the ReLU around them). On MNIST
//    the course CNN's first convolution makes 26x26x32 floats per image only for the pool to keep a
//    quarter of them; torch runs them as three passes over those 11 MB a batch (convolution, pool,
//    pool's backward with its zero fill). Here each pooled pixel computes its four candidates in
//    registers and keeps the largest and which one won (one byte), so the big map never exists.
//    The input needs no gradient (it is the model's input), so the backward pass only sums the
//    kernel's and the bias's gradients.
// 2. Keras's RMSprop step in one pass over each parameter, where torch's foreach kernels take five; velocities
//    too small for a normal float are read and written as zero (the same weights, without the slow path).
// 3. Dropout whose keep-or-drop decisions come from a counter-based hash of (seed, element index):
//    torch's bernoulli_ on a CPU draws one random number after another (9 ms for the 692,224 values
//    after the course CNN's Flatten); hashing is parallel and vectorises (0.9 ms with the backward pass).
//
// Layouts: images (B, H, W, C) contiguous, i.e. torch's channels_last; kernels (taps, filters) with
// taps = KH*KW*C in (ky, kx, c) order. Vectors are GCC's vector extensions. The fused kernel is
// compiled twice, for AVX-512 (16-float vectors) and AVX2 (8-float vectors), and cnnlab/kernels.py
// passes the widest the processor has; elsewhere models keep torch's operators. RMSprop and dropout
// are plain loops that target_clones compiles for AVX-512, AVX2 and baseline x86-64.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define X86_GCC 1
#define CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define X86_GCC 0
#define CPU_CLONES
#endif
#define INLINE inline __attribute__((always_inline))

typedef float f8 __attribute__((vector_size(32)));    // 8 floats
typedef float f16 __attribute__((vector_size(64)));   // 16 floats
typedef int32_t i8 __attribute__((vector_size(32)));  // which candidate won, while it is worked out
typedef int32_t i16 __attribute__((vector_size(64)));
typedef uint8_t u8x8 __attribute__((vector_size(8)));  // ... and as stored: a byte per filter
typedef uint8_t u8x16 __attribute__((vector_size(16)));
template <typename V> struct Lanes;  // the integer and byte vectors with as many lanes as V
template <> struct Lanes<f8> { typedef i8 Int; typedef u8x8 Bytes; };
template <> struct Lanes<f16> { typedef i16 Int; typedef u8x16 Bytes; };

// Loads and stores through memcpy accept any address; they compile to one unaligned vector move.
template <typename V> INLINE V load(const void* from) { V v; __builtin_memcpy(&v, from, sizeof v); return v; }
template <typename V> INLINE void store(void* to, const V& v) { __builtin_memcpy(to, &v, sizeof v); }

#if X86_GCC
#include <immintrin.h>
// feature lists rather than arch= levels, so that the AVX2 helpers inline into the AVX-512 functions
#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl")))
// Bytes to 32-bit lanes and back, one instruction or three: __builtin_convertvector does these lane by
// lane in GCC 12 (except AVX-512's narrowing), which made the fused kernel three times slower.
AVX2 inline i8 widen(u8x8 b) { return (i8)_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)&b)); }
AVX512 inline i16 widen(u8x16 b) { return (i16)_mm512_cvtepu8_epi32((__m128i)b); }
AVX2 inline u8x8 narrow(i8 v) {  // lanes hold 0..4
  const __m256i bytes = _mm256_packus_epi16(_mm256_packus_epi32((__m256i)v, (__m256i)v), _mm256_setzero_si256());
  const __m128i both = _mm_unpacklo_epi32(_mm256_castsi256_si128(bytes), _mm256_extracti128_si256(bytes, 1));
  return load<u8x8>(&both);
}
AVX512 inline u8x16 narrow(i16 v) { return (u8x16)_mm512_cvtepi32_epi8((__m512i)v); }
#endif

namespace {

struct ConvPool {
  int64_t height, width, channels;  // input image (H, W, C)
  int64_t filters, pooled_h, pooled_w;
  bool relu;
  std::vector<int64_t> taps;  // offset of each kernel tap from the window's top-left, in floats
  int64_t corners[4];         // offsets of a pooled pixel's four candidates from its top-left input pixel
};
constexpr int ZEROED = 4;  // in `which`: no candidate won, the ReLU after the pool zeroed the pixel

ConvPool describe(const torch::Tensor& input, int64_t kernel_h, int64_t kernel_w, int64_t filters, bool relu) {
  const int64_t height = input.size(1), width = input.size(2), channels = input.size(3);
  ConvPool s{height, width, channels, filters, (height - kernel_h + 1) / 2, (width - kernel_w + 1) / 2, relu, {},
             {0, channels, width * channels, (width + 1) * channels}};
  for (int64_t ky = 0; ky < kernel_h; ++ky)
    for (int64_t kx = 0; kx < kernel_w; ++kx)
      for (int64_t c = 0; c < channels; ++c) s.taps.push_back((ky * width + kx) * channels + c);
  return s;
}

// Rows are pooled rows of the batch: image b's row pi is row b * pooled_h + pi. A pooled pixel's window
// is its top-left input value; its four candidates are that value's 2x2 square.
INLINE void tap_inputs(const ConvPool& s, const float* window, int64_t tap, float x[4]) {  // at the four candidates
  const float* at = window + s.taps[tap];
  for (int q = 0; q < 4; ++q) x[q] = at[s.corners[q]];
}

// visit(window, first) for each group of `group` filters, from filter `first`, of every pooled pixel of rows
// [begin, end), with `at` = where the group starts in the (B, H', W', filters) output. The visitors are
// always_inline lambdas: compiled on their own they would get neither AVX2 nor AVX-512.
template <typename Visit>
INLINE void for_each_filter_group(const ConvPool& s, const float* input, int64_t begin, int64_t end, int group,
                                  Visit visit) {
  for (int64_t row = begin; row < end; ++row) {
    const int64_t b = row / s.pooled_h, pi = row % s.pooled_h;
    for (int64_t pj = 0; pj < s.pooled_w; ++pj) {
      const float* window = input + ((b * s.height + 2 * pi) * s.width + 2 * pj) * s.channels;
      for (int64_t first = 0; first < s.filters; first += group)
        visit(window, first, (row * s.pooled_w + pj) * s.filters + first);
    }
  }
}

// The filters go by in groups of NV vectors of V: 4 x NV sums stay in registers while the taps go by.
template <typename V, int NV>
INLINE void forward_rows(const ConvPool& s, const float* input, const float* kernel, const float* bias,
                         float* out, uint8_t* which, int64_t begin, int64_t end) {
  typedef typename Lanes<V>::Int Int;
  constexpr int lanes = sizeof(V) / 4;
  const int64_t taps = s.taps.size();
  for_each_filter_group(s, input, begin, end, NV * lanes,
                        [&](const float* window, int64_t first, int64_t at) __attribute__((always_inline)) {
    V sums[4][NV] = {};  // the convolution at the four candidates
    for (int64_t t = 0; t < taps; ++t) {
      float x[4];
      tap_inputs(s, window, t, x);
      for (int j = 0; j < NV; ++j) {
        const V k = load<V>(kernel + t * s.filters + first + j * lanes);
        for (int q = 0; q < 4; ++q) sums[q][j] += x[q] * k;
      }
    }
    for (int j = 0; j < NV; ++j) {
      V best = sums[0][j];
      Int winner = {};  // in 32-bit lanes like the comparisons, then narrowed to bytes
      for (int q = 1; q < 4; ++q) {  // strictly larger: ties go to the first candidate, as in torch's max_pool2d
        const auto larger = sums[q][j] > best;
        best = larger ? sums[q][j] : best;
        winner = larger ? Int{} + q : winner;
      }
      V value = best + load<V>(bias + first + j * lanes);  // one bias per filter: adding it after the max is the same
      if (s.relu) {  // a pixel the ReLU zeroes passes no gradient back: no candidate won (ZEROED)
        const auto zeroed = !(value > 0.f);
        value = zeroed ? V{} : value;
        winner = zeroed ? Int{} + ZEROED : winner;
      }
      store(out + at + j * lanes, value);
      store(which + at + j * lanes, narrow(winner));
    }
  });
}

// How many taps' sums the backward pass keeps in registers: (4 routed + TC) x NV vectors, of AVX-512's 32
// registers (16-float vectors) or AVX2's 16, a few left for the rest.
constexpr int taps_at_once(int vector_bytes, int nv) {
  return (vector_bytes == 64 ? 28 : 14) / nv - 4 < 1 ? 1 : (vector_bytes == 64 ? 28 : 14) / nv - 4;
}

// Adds rows [begin, end)'s share of the kernel's gradient (taps, filters) and the bias's (filters).
// The sums stay in registers while the pixels go by: TC taps x NV vectors at a time (a first layer has up
// to 64 taps, too many for the registers at once), each pixel's routed gradient worked out again for each
// group of taps. Adding into memory at every pixel instead made this pass 2.5x the forward pass's time.
template <typename V, int NV, int TC>
INLINE void backward_rows(const ConvPool& s, const float* input, const float* grad, const uint8_t* which,
                          float* grad_kernel, float* grad_bias, int64_t begin, int64_t end) {
  typedef typename Lanes<V>::Int Int;
  constexpr int lanes = sizeof(V) / 4;
  const int64_t taps = s.taps.size();
  for (int64_t first = 0; first < s.filters; first += NV * lanes) {
    for (int64_t t0 = 0; t0 < taps; t0 += TC) {
      V sums[TC][NV] = {}, bias_sums[NV] = {};
      for (int64_t row = begin; row < end; ++row) {
        const int64_t b = row / s.pooled_h, pi = row % s.pooled_h;
        for (int64_t pj = 0; pj < s.pooled_w; ++pj) {
          const float* window = input + ((b * s.height + 2 * pi) * s.width + 2 * pj) * s.channels;
          const int64_t at = (row * s.pooled_w + pj) * s.filters + first;
          V routed[4][NV];  // the pixel's gradient, sent to the candidate that won the max
          for (int j = 0; j < NV; ++j) {
            const V g = load<V>(grad + at + j * lanes);  // loaded whatever `which` says: a masked load waits for it
            const Int won = widen(load<typename Lanes<V>::Bytes>(which + at + j * lanes));
            for (int q = 0; q < 4; ++q) routed[q][j] = won == q ? g : V{};  // all zero where the ReLU zeroed it
            if (t0 == 0) bias_sums[j] += (routed[0][j] + routed[1][j]) + (routed[2][j] + routed[3][j]);
          }
          for (int t = 0; t < TC; ++t) {
            if (t0 + t >= taps) break;
            float x[4];
            tap_inputs(s, window, t0 + t, x);
            for (int j = 0; j < NV; ++j)
              sums[t][j] += (x[0] * routed[0][j] + x[1] * routed[1][j]) + (x[2] * routed[2][j] + x[3] * routed[3][j]);
          }
        }
      }
      for (int t = 0; t < TC && t0 + t < taps; ++t)
        for (int j = 0; j < NV; ++j) {
          float* k = grad_kernel + (t0 + t) * s.filters + first + j * lanes;
          store(k, load<V>(k) + sums[t][j]);
        }
      if (t0 == 0)
        for (int j = 0; j < NV; ++j) {
          float* bias = grad_bias + first + j * lanes;
          store(bias, load<V>(bias) + bias_sums[j]);
        }
    }
  }
}

// The widest vectors the processor has, in bits; 0 where the fused kernel has no vector code (it would
// be slower than torch's operators there). Checked once, when the module loads.
int widest_vectors() {
#if X86_GCC
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return 512;
  if (avx2) return 256;
#endif
  return 0;
}

// A (vector, count) pair per filter count: whole groups of filters, their 4 x count sums in registers
// (AVX-512 has 32 vector registers, AVX2 16). A 16-float vector in AVX2 code goes lane by lane, 40
// times slower: AVX2 takes 8-float vectors only.
#define FILTERS_ON_512(call)                                                   \
  switch (s.filters) {                                                          \
    case 8: call(f8, 1); break;                                                 \
    case 16: call(f16, 1); break;                                               \
    case 24: call(f8, 3); break;                                                \
    case 32: call(f16, 2); break;                                               \
    case 48: call(f16, 3); break;                                               \
    case 64: call(f16, 4); break;                                               \
    default: TORCH_CHECK(false, "conv_pool: unsupported filter count ", s.filters); \
  }
#define FILTERS_ON_256(call)                                                   \
  switch (s.filters % 16) {                                                     \
    case 0: call(f8, 2); break;                                                 \
    default: call(f8, 1); break;                                                \
  }
#define FORWARD(V, NV) forward_rows<V, NV>(s, input, kernel, bias, out, which, begin, end)
#define BACKWARD(V, NV) backward_rows<V, NV, taps_at_once(sizeof(V), NV)>(s, input, grad, which, grad_kernel, grad_bias, begin, end)
#define FORWARD_ARGUMENTS const ConvPool &s, const float *input, const float *kernel, const float *bias, float *out, \
                          uint8_t *which, int64_t begin, int64_t end
#define BACKWARD_ARGUMENTS const ConvPool &s, const float *input, const float *grad, \
                           const uint8_t *which, float *grad_kernel, float *grad_bias, int64_t begin, int64_t end

#if X86_GCC
AVX512 void forward_512(FORWARD_ARGUMENTS) { FILTERS_ON_512(FORWARD) }
AVX2 void forward_256(FORWARD_ARGUMENTS) { FILTERS_ON_256(FORWARD) }
AVX512 void backward_512(BACKWARD_ARGUMENTS) { FILTERS_ON_512(BACKWARD) }
AVX2 void backward_256(BACKWARD_ARGUMENTS) { FILTERS_ON_256(BACKWARD) }
#endif

void forward_range(int64_t bits, FORWARD_ARGUMENTS) {
#if X86_GCC
  if (bits == 512) return forward_512(s, input, kernel, bias, out, which, begin, end);
  if (bits == 256) return forward_256(s, input, kernel, bias, out, which, begin, end);
#endif
  TORCH_CHECK(false, "conv_pool: no vector code for ", bits, "-bit vectors on this processor");
}

void backward_range(int64_t bits, BACKWARD_ARGUMENTS) {
#if X86_GCC
  if (bits == 512) return backward_512(s, input, grad, which, grad_kernel, grad_bias, begin, end);
  if (bits == 256) return backward_256(s, input, grad, which, grad_kernel, grad_bias, begin, end);
#endif
  TORCH_CHECK(false, "conv_pool: no vector code for ", bits, "-bit vectors on this processor");
}

CPU_CLONES void rmsprop_range(float* __restrict param, const float* __restrict grad, float* __restrict velocity,
                              int64_t begin, int64_t end, float lr, float rho, float epsilon, float weight_decay) {
  for (int64_t i = begin; i < end; ++i) {
    const float g = grad[i] + weight_decay * param[i];
    const float v = rho * velocity[i] + (1.f - rho) * g * g;
    velocity[i] = v;
    param[i] -= lr * g / std::sqrt(v + epsilon);
  }
}

// A weight whose gradient is zero in most batches (the MLP's weights for MNIST's border pixels) has a velocity
// that shrinks by rho a step until it is a denormal, and every multiply on a denormal takes a microcode assist:
// after the course MLP's 10 epochs 17,144 of its first layer's velocities were denormal. They only ever meet
// epsilon (v + 1e-7 rounds to 1e-7 whether v is 1e-39 or 0), so reading and writing them as zero (x86's DAZ
// and FTZ, for this pass only) leaves every weight bit-identical.
#if X86_GCC  // <immintrin.h> is included above
struct DenormalsAsZero {
  unsigned int saved = _mm_getcsr();
  DenormalsAsZero() { _mm_setcsr(saved | 0x8040); }  // FTZ (bit 15) and DAZ (bit 6)
  ~DenormalsAsZero() { _mm_setcsr(saved); }
};
#else
struct DenormalsAsZero {};
#endif

// lowbias32 (Chris Wellons's 32-bit integer hash): every output bit depends on every input bit.
INLINE uint32_t mix(uint32_t x) {
  x ^= x >> 16, x *= 0x7feb352dU, x ^= x >> 15, x *= 0x846ca68bU, x ^= x >> 16;
  return x;
}

// Keeps x[i] (times scale) where hash(seed, i) < threshold = keep probability * 2^32.
CPU_CLONES void dropout_range(const float* __restrict x, float* __restrict y, bool* __restrict kept, int64_t begin,
                              int64_t end, uint64_t seed, uint32_t threshold, float scale) {
  const uint32_t low = (uint32_t)seed, high = (uint32_t)(seed >> 32);
  for (int64_t i = begin; i < end; ++i) {
    const bool keep = mix(mix((uint32_t)i ^ low) + high) < threshold;
    kept[i] = keep;
    y[i] = keep ? x[i] * scale : 0.f;
  }
}

void check_float(const torch::Tensor& t, const char* what) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.is_contiguous(),
              what, ": expected a contiguous float32 CPU tensor");
}

constexpr int64_t ROWS_PER_TASK = 16;  // pooled rows: 16 x 13 pixels x 32 filters ~ 27 KB of output

}  // namespace

// input (B, H, W, C), kernel (taps, filters), bias (filters) -> out (B, H', W', filters), which (same, uint8)
std::vector<torch::Tensor> conv_pool_forward(torch::Tensor input, torch::Tensor kernel, torch::Tensor bias,
                                             int64_t kernel_h, int64_t kernel_w, bool relu, int64_t vector_bits) {
  check_float(input, "input"), check_float(kernel, "kernel"), check_float(bias, "bias");
  const ConvPool s = describe(input, kernel_h, kernel_w, kernel.size(1), relu);
  TORCH_CHECK(kernel.size(0) == (int64_t)s.taps.size() && bias.numel() == s.filters, "conv_pool: shapes disagree");
  const int64_t batch = input.size(0);
  auto out = torch::empty({batch, s.pooled_h, s.pooled_w, s.filters}, input.options());
  auto which = torch::empty({batch, s.pooled_h, s.pooled_w, s.filters}, input.options().dtype(torch::kUInt8));
  const float *in = input.data_ptr<float>(), *k = kernel.data_ptr<float>(), *b = bias.data_ptr<float>();
  float* o = out.data_ptr<float>();
  uint8_t* w = which.data_ptr<uint8_t>();
  at::parallel_for(0, batch * s.pooled_h, ROWS_PER_TASK, [&](int64_t begin, int64_t end) {
    forward_range(vector_bits, s, in, k, b, o, w, begin, end);
  });
  return {out, which};
}

// grad (B, H', W', filters), input (B, H, W, C), which (as grad, uint8) -> grad_kernel (taps, filters), grad_bias
std::vector<torch::Tensor> conv_pool_backward(torch::Tensor grad, torch::Tensor input, torch::Tensor which,
                                              int64_t kernel_h, int64_t kernel_w, int64_t vector_bits) {
  check_float(grad, "grad"), check_float(input, "input");
  TORCH_CHECK(which.is_contiguous() && which.scalar_type() == torch::kUInt8 && grad.sizes() == which.sizes(),
              "conv_pool_backward: shapes disagree");
  const ConvPool s = describe(input, kernel_h, kernel_w, which.size(3), false);
  const int64_t taps = s.taps.size(), batch = input.size(0);
  // one (taps + 1, filters) block of partial sums per thread, added up at the end: no locks
  auto partial = torch::zeros({at::get_num_threads(), taps + 1, s.filters}, input.options());
  const float *in = input.data_ptr<float>(), *g = grad.data_ptr<float>();
  const uint8_t* w = which.data_ptr<uint8_t>();
  float* sums = partial.data_ptr<float>();
  at::parallel_for(0, batch * s.pooled_h, ROWS_PER_TASK, [&](int64_t begin, int64_t end) {
    float* mine = sums + at::get_thread_num() * (taps + 1) * s.filters;
    backward_range(vector_bits, s, in, g, w, mine, mine + taps * s.filters, begin, end);
  });
  auto total = partial.sum(0);  // (taps + 1, filters)
  return {total.narrow(0, 0, taps), total.select(0, taps)};
}

// velocity = rho*velocity + (1-rho)*g^2;  param -= lr*g / sqrt(velocity + epsilon), g = grad + weight_decay*param
void rmsprop_step(std::vector<torch::Tensor> params, std::vector<torch::Tensor> grads,
                  std::vector<torch::Tensor> velocities, double lr, double rho, double epsilon, double weight_decay) {
  TORCH_CHECK(params.size() == grads.size() && params.size() == velocities.size(), "rmsprop_step: list lengths differ");
  for (size_t i = 0; i < params.size(); ++i) {
    const auto &p = params[i], &g = grads[i], &v = velocities[i];
    TORCH_CHECK(p.device().is_cpu() && p.scalar_type() == torch::kFloat && p.is_non_overlapping_and_dense() &&
                g.scalar_type() == torch::kFloat && v.scalar_type() == torch::kFloat &&
                g.strides() == p.strides() && v.strides() == p.strides() && g.sizes() == p.sizes(),
                "rmsprop_step: parameter, gradient and velocity must be dense float32 CPU tensors with one layout");
    float *param = p.data_ptr<float>(), *velocity = v.data_ptr<float>();
    const float* gradient = g.data_ptr<float>();
    at::parallel_for(0, p.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
      const DenormalsAsZero flushed{};  // each thread's own control register
      rmsprop_range(param, gradient, velocity, begin, end, lr, rho, epsilon, weight_decay);
    });
  }
}

// x (any shape, dense) -> y = x * kept / keep, kept (bool, x's shape and layout)
std::vector<torch::Tensor> dropout_forward(torch::Tensor x, double keep, int64_t seed) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat && x.is_non_overlapping_and_dense() &&
              x.numel() <= (int64_t(1) << 32) && keep > 0 && keep < 1,
              "dropout_forward: expected a dense float32 CPU tensor of at most 2^32 values, 0 < keep < 1");
  auto y = torch::empty_like(x), kept = torch::empty_like(x, x.options().dtype(torch::kBool));
  TORCH_CHECK(y.strides() == x.strides() && kept.strides() == x.strides(), "dropout_forward: layouts differ");
  const float* in = x.data_ptr<float>();
  float* out = y.data_ptr<float>();
  bool* mask = kept.data_ptr<bool>();
  const uint32_t threshold = (uint32_t)(keep * 4294967296.0);
  at::parallel_for(0, x.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    dropout_range(in, out, mask, begin, end, (uint64_t)seed, threshold, (float)(1.0 / keep));
  });
  return {y, kept};
}

// pool.cpp: the 2x2 max-pool with its ReLU, for convolutions after the first
std::vector<torch::Tensor> relu_pool_forward(torch::Tensor input, bool relu);
torch::Tensor relu_pool_backward(torch::Tensor grad, torch::Tensor which, int64_t height, int64_t width);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("widest_vectors", &widest_vectors);
  m.def("conv_pool_forward", &conv_pool_forward);
  m.def("conv_pool_backward", &conv_pool_backward);
  m.def("rmsprop_step", &rmsprop_step);
  m.def("dropout_forward", &dropout_forward);
  m.def("relu_pool_forward", &relu_pool_forward);
  m.def("relu_pool_backward", &relu_pool_backward);
}
