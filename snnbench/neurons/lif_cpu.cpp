// Fused multi-step LIF forward and surrogate backward for CPU tensors [T, N] (float32/float64).
//
// The same arithmetic as the torch-ops path of snnbench/neurons/functional.py (_lif_forward and
// _LIFMultiStep.backward), one pass over memory per direction: each thread owns a block of neurons and walks
// it in chunks whose membranes (forward) or carried gradients (backward) stay in L2 while the T steps are
// walked, each step's row of the chunk being long enough for the hardware prefetchers. Built with -fopenmp
// so that at::parallel_for spreads the blocks over torch's threads (without it, its OpenMP pragma is
// ignored and the kernels run on one thread). The sigmoid surrogate's exp is a branch-free polynomial for
// float32 (the compiler vectorises it; -fno-trapping-math lets AVX2 do so too) and std::exp for float64.
// A float32 forward whose outputs are large writes them with streaming stores (AVX), around the caches.
#include <torch/extension.h>
#include <torch/csrc/autograd/variable.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__AVX__)
#include <immintrin.h>
#endif

// The loops below have no dependence between neurons, even where the output overwrites the membrane it reads
// (element i is read before it is written): say so, or the compiler falls back to scalar code on aliasing.
#if defined(__clang__)
#define INDEPENDENT_NEURONS _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define INDEPENDENT_NEURONS _Pragma("GCC ivdep")
#else
#define INDEPENDENT_NEURONS
#endif

namespace {

enum SurrogateKind : int64_t { kSigmoid = 0, kArctan = 1, kFastSigmoid = 2, kTriangle = 3 };

// a·b + c in one rounding where the hardware has FMA (used only inside exp_polynomial below)
inline float mul_add(float a, float b, float c) {
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

// exp(x) for float32 x <= 0 without a library call: Cody-Waite reduction x = k ln2 + r, |r| <= ln2/2, Cephes'
// degree-6 polynomial for e^r, 2^k assembled in the exponent bits. Within 1.3 ulp of the exact value on
// [-87, 0]. Below -87 it returns 0: the exact value is below 1.7e-38, at the edge of float32's normal range
// (the polynomial is evaluated at -87 only to keep 2^k's exponent bits valid). It used to return exp(-87)
// there, a surrogate gradient of ~7e-38 for every neuron more than 87/α below threshold; in a silent
// network those products fell into the subnormal range inside the weight-gradient GEMM, which Intel
// CPUs compute with a microcode assist per operation (benchmarks/README.md, issue 27).
inline float exp_polynomial(float x) {
  const bool underflows = x < -87.0f;
  x = std::max(x, -87.0f);
  const float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest (1.5·2^23)
  const float r = mul_add(k, 2.12194440e-4f, mul_add(k, -0.693359375f, x));
  float p = 1.9875691500e-4f;
  p = mul_add(p, r, 1.3981999507e-3f);
  p = mul_add(p, r, 8.3334519073e-3f);
  p = mul_add(p, r, 4.1665795894e-2f);
  p = mul_add(p, r, 1.6666665459e-1f);
  p = mul_add(p, r, 5.0000001201e-1f);
  const float e_r = mul_add(p, r * r, r + 1.0f);
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
  float two_k;
  std::memcpy(&two_k, &bits, sizeof two_k);
  return underflows ? 0.0f : e_r * two_k;
}

inline float exp_any(float x) { return exp_polynomial(x); }
inline double exp_any(double x) { return std::exp(x); }

template <typename scalar_t>
inline scalar_t surrogate_derivative(scalar_t x, int64_t kind, scalar_t alpha) {
  switch (kind) {
    case kSigmoid: {  // α σ(αx)(1 − σ(αx)) = α e / (1 + e)², e = exp(−α|x|) ≤ 1 (no overflow)
      const scalar_t e = exp_any(-alpha * std::abs(x));
      const scalar_t d = scalar_t(1) + e;
      return alpha * e / (d * d);
    }
    case kArctan: {
      const scalar_t z = scalar_t(M_PI / 2.0) * alpha * x;
      return (alpha / scalar_t(2)) / (scalar_t(1) + z * z);
    }
    case kFastSigmoid: {
      const scalar_t d = scalar_t(1) + alpha * std::abs(x);
      return scalar_t(1) / (d * d);
    }
    default: {
      const scalar_t d = scalar_t(1) - std::abs(x);
      return d > scalar_t(0) ? alpha * d : scalar_t(0);
    }
  }
}

constexpr int64_t kGrain = 4096;  // neurons per task: enough work to amortise a thread's start
constexpr int64_t kChunk = 65536;  // neurons walked through all T steps at once: state in L2, long row streams
// The backward computes the surrogate of this many neurons of a row into a stack buffer before combining: its
// exp is a chain of ~12 dependent FMAs per vector, and a loop of only that chain lets the out-of-order core
// overlap many more vectors than one that also carries the combine's loads and stores (bit-identical; on a
// Zen 1 EPYC the backward on [500, 16, 1024] 15.4 -> 12.9 ms, 11.5 ms with build.py's -mtune=generic)
constexpr int64_t kSurrogateBlock = 256;

}  // namespace

// A float32 forward output of at least this many bytes is written with streaming stores: nothing reads it
// back while it would still be cached (h waits for the backward; s is read by the next layer from the first
// step on, after the whole tensor has passed), so a normal store's read-for-ownership and the cache lines it
// evicts are wasted. On a Zen 1 EPYC, [500, 16, 1024]: forward 7.3 -> 4.9 ms; below ~2 MiB it was slower.
constexpr int64_t kStreamBytes = int64_t(4) << 20;

// One neuron-step: h = decay·(v − rest) + rest + gain·x, the spike [h ≥ ϑ], and v ← the membrane after reset
template <typename scalar_t, bool kSoft, bool kRestAtZero>
inline scalar_t lif_neuron_step(scalar_t& v, scalar_t x, scalar_t& spike, scalar_t decay, scalar_t gain,
                                scalar_t threshold, scalar_t rest) {
  const scalar_t leaked = kRestAtZero ? v * decay : (v - rest) * decay + rest;
  const scalar_t h = leaked + gain * x;
  const bool fired = h >= threshold;
  spike = fired ? scalar_t(1) : scalar_t(0);
  v = kSoft ? (fired ? h - threshold : h) : (fired ? rest : h);
  return h;
}

#if defined(__AVX__)
// lif_neuron_step on eight float32 neurons at a time (the same operations in the same order: the same bits),
// spikes and h written with streaming stores. Steps neurons one by one until s is 32-byte aligned (h has the
// same offset from its own allocation), then eight at a time; returns how many neurons it stepped (the caller
// steps the rest).
template <bool kSoft, bool kRestAtZero, bool kKeepMembrane>
int64_t lif_forward_row_streamed(const float* x, float* s, float* h_out, float* v, int64_t count, float decay,
                                 float gain, float threshold, float rest) {
  const auto misalignment = [](const float* p) { return reinterpret_cast<uintptr_t>(p) & 31; };
  int64_t i = 0;
  for (; i < count && misalignment(s + i) != 0; ++i) {
    const float h = lif_neuron_step<float, kSoft, kRestAtZero>(v[i], x[i], s[i], decay, gain, threshold, rest);
    if (kKeepMembrane) h_out[i] = h;
  }
  if (kKeepMembrane && misalignment(h_out + i) != 0) {
    return i;  // the two allocations differ in alignment (not torch's): the caller's loop takes the row
  }
  const __m256 decay_v = _mm256_set1_ps(decay), gain_v = _mm256_set1_ps(gain);
  const __m256 threshold_v = _mm256_set1_ps(threshold), rest_v = _mm256_set1_ps(rest), one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= count; i += 8) {
    const __m256 v_i = _mm256_loadu_ps(v + i);
    const __m256 leaked =
        kRestAtZero ? _mm256_mul_ps(v_i, decay_v) : _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(v_i, rest_v), decay_v), rest_v);
    const __m256 h = _mm256_add_ps(leaked, _mm256_mul_ps(gain_v, _mm256_loadu_ps(x + i)));
    const __m256 fired = _mm256_cmp_ps(h, threshold_v, _CMP_GE_OQ);  // false for NaN, as h >= ϑ
    if (kKeepMembrane) _mm256_stream_ps(h_out + i, h);
    _mm256_stream_ps(s + i, _mm256_and_ps(fired, one));
    _mm256_storeu_ps(v + i, _mm256_blendv_ps(h, kSoft ? _mm256_sub_ps(h, threshold_v) : rest_v, fired));
  }
  return i;
}
#endif

template <typename scalar_t, bool kSoft, bool kRestAtZero, bool kKeepMembrane>
void lif_forward_block(const scalar_t* xp, scalar_t* sp, scalar_t* hp, int64_t steps, int64_t neurons,
                       int64_t begin, int64_t end, scalar_t decay, scalar_t gain, scalar_t threshold,
                       scalar_t rest, bool stream) {
  std::vector<scalar_t> v_buffer(std::min(kChunk, end - begin));
  scalar_t* v = v_buffer.data();
  for (int64_t first = begin; first < end; first += kChunk) {
    const int64_t count = std::min(kChunk, end - first);
    std::fill(v, v + count, scalar_t(0));
    for (int64_t t = 0; t < steps; ++t) {
      const int64_t row = t * neurons + first;
      const scalar_t* x_t = xp + row;
      scalar_t* s_t = sp + row;
      scalar_t* h_t = kKeepMembrane ? hp + row : nullptr;
      int64_t i = 0;
#if defined(__AVX__)
      if constexpr (std::is_same_v<scalar_t, float>) {
        if (stream) {
          i = lif_forward_row_streamed<kSoft, kRestAtZero, kKeepMembrane>(x_t, s_t, h_t, v, count, decay, gain,
                                                                          threshold, rest);
        }
      }
#endif
      INDEPENDENT_NEURONS
      for (; i < count; ++i) {  // branch-free: the compiler vectorises it
        const scalar_t h =
            lif_neuron_step<scalar_t, kSoft, kRestAtZero>(v[i], x_t[i], s_t[i], decay, gain, threshold, rest);
        if (kKeepMembrane) h_t[i] = h;
      }
    }
  }
#if defined(__AVX__)
  if (stream) {
    _mm_sfence();  // streaming stores are weakly ordered: make them visible before the threads join
  }
#endif
}

// Returns (spikes, h): spikes s_t = [h_t >= v_threshold], h_t the membrane before reset; h is not written (and
// None is returned for it) without ``keep_membrane``: a forward without gradient has no use for it.
// h_t = decay·(v − rest) + rest + gain·x_t (decay = 1 − 1/τ; gain = 1/τ for the decay-input LIF, 1 for
// u = λu + x, and decay = gain = 1 for integrate-and-fire).
std::vector<torch::Tensor> lif_forward(torch::Tensor x, double decay_, double gain_, double v_threshold,
                                       double v_reset, bool soft_reset, bool keep_membrane) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() >= 1, "lif_forward: a CPU tensor [T, ...] is expected");
  const auto input = x.contiguous();
  const int64_t steps = input.size(0);
  const int64_t neurons = steps ? input.numel() / steps : 0;
  auto spikes = torch::empty_like(input);
  auto membrane = keep_membrane ? torch::empty_like(input) : torch::Tensor();
  const bool stream = input.nbytes() >= static_cast<size_t>(kStreamBytes);
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "lif_forward", [&] {
    const scalar_t* xp = input.data_ptr<scalar_t>();
    scalar_t* sp = spikes.data_ptr<scalar_t>();
    scalar_t* hp = keep_membrane ? membrane.data_ptr<scalar_t>() : nullptr;
    const scalar_t decay = scalar_t(decay_);
    const scalar_t gain = scalar_t(gain_);
    const scalar_t threshold = scalar_t(v_threshold);
    const scalar_t rest = soft_reset ? scalar_t(0) : scalar_t(v_reset);
    at::parallel_for(0, neurons, kGrain, [&](int64_t begin, int64_t end) {
      // template flags: <soft reset, rest at 0> then keep_membrane
      const auto run = [&](auto soft, auto rest_at_zero) {
        if (keep_membrane) {
          lif_forward_block<scalar_t, soft(), rest_at_zero(), true>(xp, sp, hp, steps, neurons, begin, end, decay,
                                                                   gain, threshold, rest, stream);
        } else {
          lif_forward_block<scalar_t, soft(), rest_at_zero(), false>(xp, sp, hp, steps, neurons, begin, end, decay,
                                                                    gain, threshold, rest, stream);
        }
      };
      if (soft_reset) {
        run(std::true_type{}, std::true_type{});
      } else if (rest == scalar_t(0)) {
        run(std::false_type{}, std::true_type{});
      } else {
        run(std::false_type{}, std::false_type{});
      }
    });
  });
  return {spikes, membrane};
}

// The constants of one backward call; ``grad_row_stride`` is 0 when ∂L/∂s is the same at every step.
template <typename scalar_t>
struct BackwardArgs {
  const scalar_t* grad;
  const scalar_t* membrane;
  scalar_t* out;
  int64_t steps, neurons, grad_row_stride;
  scalar_t decay, gain, threshold, rest, alpha;
};

template <typename scalar_t, int64_t kSurrogate, bool kSoft, bool kDetach>
void lif_backward_block(const BackwardArgs<scalar_t>& a, int64_t begin, int64_t end) {
  std::vector<scalar_t> carried_buffer(std::min(kChunk, end - begin));  // decay · ∂L/∂h_{t+1}
  scalar_t* carried = carried_buffer.data();
  scalar_t surrogate[kSurrogateBlock];
  // locals, not a.*: a store through out_t could alias the struct's fields as far as the compiler knows
  const scalar_t threshold = a.threshold, alpha = a.alpha, rest = a.rest, gain = a.gain, decay = a.decay;
  for (int64_t first = begin; first < end; first += kChunk) {
    const int64_t count = std::min(kChunk, end - first);
    std::fill(carried, carried + count, scalar_t(0));
    for (int64_t t = a.steps - 1; t >= 0; --t) {
      const scalar_t* h_t = a.membrane + t * a.neurons + first;
      const scalar_t* g_t = a.grad + t * a.grad_row_stride + first;
      scalar_t* out_t = a.out + t * a.neurons + first;  // may alias h_t: element i is read before it is written
      for (int64_t first_i = 0; first_i < count; first_i += kSurrogateBlock) {
        const int64_t n = std::min(kSurrogateBlock, count - first_i);
        const scalar_t* h_b = h_t + first_i;
        INDEPENDENT_NEURONS
        for (int64_t i = 0; i < n; ++i) {
          surrogate[i] = surrogate_derivative(h_b[i] - threshold, kSurrogate, alpha);
        }
        const scalar_t* g_b = g_t + first_i;
        scalar_t* out_b = out_t + first_i;
        scalar_t* carried_b = carried + first_i;
        INDEPENDENT_NEURONS
        for (int64_t i = 0; i < n; ++i) {  // branch-free for each template instance: vectorised
          const scalar_t h = h_b[i];
          const scalar_t g = surrogate[i];
          scalar_t dv_dh;
          if (kSoft) {
            dv_dh = kDetach ? scalar_t(1) : scalar_t(1) - threshold * g;
          } else {
            const scalar_t below = h < threshold ? scalar_t(1) : scalar_t(0);
            dv_dh = kDetach ? below : below - (h - rest) * g;
          }
          const scalar_t grad_h = g_b[i] * g + carried_b[i] * dv_dh;
          out_b[i] = grad_h * gain;
          carried_b[i] = grad_h * decay;
        }
      }
    }
  }
}

template <typename scalar_t, int64_t kSurrogate>
void lif_backward_dispatch(bool soft, bool detach, const BackwardArgs<scalar_t>& a, int64_t begin, int64_t end) {
  if (soft && detach) {
    lif_backward_block<scalar_t, kSurrogate, true, true>(a, begin, end);
  } else if (soft) {
    lif_backward_block<scalar_t, kSurrogate, true, false>(a, begin, end);
  } else if (detach) {
    lif_backward_block<scalar_t, kSurrogate, false, true>(a, begin, end);
  } else {
    lif_backward_block<scalar_t, kSurrogate, false, false>(a, begin, end);
  }
}

// ∂L/∂x from ∂L/∂s and the saved pre-reset membranes h (see _LIFMultiStep's docstring for the equations).
// With ``into_membrane`` the result overwrites ``membrane`` (no new [T, N] buffer) and the tensor's version
// is bumped, so a second backward through the same graph fails loudly instead of reading gradients as h.
// A ∂L/∂s that is the same at every step (a loss on spike counts or sums) is read without copying it T times.
torch::Tensor lif_backward(torch::Tensor grad_spikes, torch::Tensor membrane, double decay, double gain, double v_threshold,
                           double v_reset, bool soft_reset, bool detach_reset, int64_t surrogate, double alpha,
                           bool into_membrane) {
  TORCH_CHECK(membrane.device().is_cpu() && membrane.dim() >= 1, "lif_backward: a CPU tensor [T, ...] is expected");
  TORCH_CHECK(surrogate >= kSigmoid && surrogate <= kTriangle, "lif_backward: unknown surrogate");
  TORCH_CHECK(grad_spikes.sizes() == membrane.sizes(), "lif_backward: gradient and membrane shapes differ");
  TORCH_CHECK(!into_membrane || membrane.is_contiguous(), "lif_backward: in place needs a contiguous membrane");
  const auto h_all = membrane.contiguous();
  const int64_t steps = h_all.size(0);
  const int64_t neurons = steps ? h_all.numel() / steps : 0;
  const bool same_every_step = steps > 1 && grad_spikes.stride(0) == 0;
  const auto grad = same_every_step ? grad_spikes.select(0, 0).contiguous() : grad_spikes.contiguous();
  auto grad_x = into_membrane ? h_all : torch::empty_like(h_all);
  AT_DISPATCH_FLOATING_TYPES(h_all.scalar_type(), "lif_backward", [&] {
    const BackwardArgs<scalar_t> args{
        grad.data_ptr<scalar_t>(), h_all.data_ptr<scalar_t>(), grad_x.data_ptr<scalar_t>(), steps, neurons,
        same_every_step ? 0 : neurons, scalar_t(decay), scalar_t(gain),
        scalar_t(v_threshold), scalar_t(v_reset), scalar_t(alpha)};
    at::parallel_for(0, neurons, kGrain, [&](int64_t begin, int64_t end) {
      switch (surrogate) {
        case kSigmoid:
          lif_backward_dispatch<scalar_t, kSigmoid>(soft_reset, detach_reset, args, begin, end);
          break;
        case kArctan:
          lif_backward_dispatch<scalar_t, kArctan>(soft_reset, detach_reset, args, begin, end);
          break;
        case kFastSigmoid:
          lif_backward_dispatch<scalar_t, kFastSigmoid>(soft_reset, detach_reset, args, begin, end);
          break;
        default:
          lif_backward_dispatch<scalar_t, kTriangle>(soft_reset, detach_reset, args, begin, end);
      }
    });
  });
  if (into_membrane) {
    torch::autograd::impl::bump_version(membrane);
  }
  return grad_x;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("lif_forward", &lif_forward, "fused multi-step LIF forward (CPU)");
  m.def("lif_backward", &lif_backward, "fused multi-step LIF surrogate backward (CPU)");
}
