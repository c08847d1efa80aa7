// Fused multi-step LIF forward and surrogate backward for CPU tensors [T, N] (float32/float64).
//
// The same arithmetic as the torch-ops path of snnbench/neurons/functional.py (_lif_forward and
// _LIFMultiStep.backward), one pass over memory per direction: each thread owns a block of neurons and walks
// the T steps with the membrane (forward) or the carried gradient (backward) held in a small local buffer.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

namespace {

enum SurrogateKind : int64_t { kSigmoid = 0, kArctan = 1, kFastSigmoid = 2, kTriangle = 3 };

template <typename scalar_t>
inline scalar_t surrogate_derivative(scalar_t x, int64_t kind, scalar_t alpha) {
  switch (kind) {
    case kSigmoid: {
      const scalar_t s = scalar_t(1) / (scalar_t(1) + std::exp(-alpha * x));
      return alpha * (s - s * s);
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

}  // namespace

template <typename scalar_t, bool kSoft, bool kRestAtZero>
void lif_forward_block(const scalar_t* xp, scalar_t* sp, scalar_t* hp, int64_t steps, int64_t neurons,
                       int64_t begin, int64_t end, scalar_t decay, scalar_t gain, scalar_t threshold,
                       scalar_t rest) {
  std::vector<scalar_t> v(end - begin, scalar_t(0));
  scalar_t* vp = v.data() - begin;
  for (int64_t t = 0; t < steps; ++t) {
    const scalar_t* x_t = xp + t * neurons;
    scalar_t* s_t = sp + t * neurons;
    scalar_t* h_t = hp + t * neurons;
    for (int64_t n = begin; n < end; ++n) {  // branch-free: the compiler vectorises it
      const scalar_t leaked = kRestAtZero ? vp[n] * decay : (vp[n] - rest) * decay + rest;
      const scalar_t h = leaked + gain * x_t[n];
      const bool fired = h >= threshold;
      h_t[n] = h;
      s_t[n] = fired ? scalar_t(1) : scalar_t(0);
      vp[n] = kSoft ? (fired ? h - threshold : h) : (fired ? rest : h);
    }
  }
}

// Returns (spikes, h): spikes s_t = [h_t >= v_threshold], h_t the membrane before reset.
std::vector<torch::Tensor> lif_forward(torch::Tensor x, double tau, double v_threshold, double v_reset,
                                       bool soft_reset) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() >= 1, "lif_forward: a CPU tensor [T, ...] is expected");
  const auto input = x.contiguous();
  const int64_t steps = input.size(0);
  const int64_t neurons = steps ? input.numel() / steps : 0;
  auto spikes = torch::empty_like(input);
  auto membrane = torch::empty_like(input);
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "lif_forward", [&] {
    const scalar_t* xp = input.data_ptr<scalar_t>();
    scalar_t* sp = spikes.data_ptr<scalar_t>();
    scalar_t* hp = membrane.data_ptr<scalar_t>();
    const scalar_t decay = scalar_t(1) - scalar_t(1) / scalar_t(tau);
    const scalar_t gain = scalar_t(1) / scalar_t(tau);
    const scalar_t threshold = scalar_t(v_threshold);
    const scalar_t rest = soft_reset ? scalar_t(0) : scalar_t(v_reset);
    at::parallel_for(0, neurons, kGrain, [&](int64_t begin, int64_t end) {
      if (soft_reset) {
        lif_forward_block<scalar_t, true, true>(xp, sp, hp, steps, neurons, begin, end, decay, gain, threshold, rest);
      } else if (rest == scalar_t(0)) {
        lif_forward_block<scalar_t, false, true>(xp, sp, hp, steps, neurons, begin, end, decay, gain, threshold, rest);
      } else {
        lif_forward_block<scalar_t, false, false>(xp, sp, hp, steps, neurons, begin, end, decay, gain, threshold, rest);
      }
    });
  });
  return {spikes, membrane};
}

template <typename scalar_t, int64_t kSurrogate, bool kSoft, bool kDetach>
void lif_backward_block(const scalar_t* gp, const scalar_t* hp, const scalar_t* sigp, scalar_t* out,
                        int64_t steps, int64_t neurons, int64_t begin, int64_t end, scalar_t decay,
                        scalar_t inv_tau, scalar_t threshold, scalar_t rest, scalar_t alpha) {
  std::vector<scalar_t> carried(end - begin, scalar_t(0));  // decay · ∂L/∂h_{t+1}
  scalar_t* cp = carried.data() - begin;
  for (int64_t t = steps - 1; t >= 0; --t) {
    const int64_t row = t * neurons;
    for (int64_t n = begin; n < end; ++n) {  // branch-free for each template instance: vectorised
      const scalar_t h = hp[row + n];
      scalar_t g;
      if (kSurrogate == kSigmoid) {
        const scalar_t s = sigp[row + n];
        g = alpha * (s - s * s);
      } else {
        g = surrogate_derivative(h - threshold, kSurrogate, alpha);
      }
      scalar_t dv_dh;
      if (kSoft) {
        dv_dh = kDetach ? scalar_t(1) : scalar_t(1) - threshold * g;
      } else {
        const scalar_t below = h < threshold ? scalar_t(1) : scalar_t(0);
        dv_dh = kDetach ? below : below - (h - rest) * g;
      }
      const scalar_t grad_h = gp[row + n] * g + cp[n] * dv_dh;
      out[row + n] = grad_h * inv_tau;
      cp[n] = grad_h * decay;
    }
  }
}

template <typename scalar_t, int64_t kSurrogate>
void lif_backward_dispatch(bool soft, bool detach, const scalar_t* gp, const scalar_t* hp, const scalar_t* sigp,
                           scalar_t* out, int64_t steps, int64_t neurons, int64_t begin, int64_t end,
                           scalar_t decay, scalar_t inv_tau, scalar_t threshold, scalar_t rest, scalar_t alpha) {
  if (soft && detach) {
    lif_backward_block<scalar_t, kSurrogate, true, true>(gp, hp, sigp, out, steps, neurons, begin, end, decay,
                                                         inv_tau, threshold, rest, alpha);
  } else if (soft) {
    lif_backward_block<scalar_t, kSurrogate, true, false>(gp, hp, sigp, out, steps, neurons, begin, end, decay,
                                                          inv_tau, threshold, rest, alpha);
  } else if (detach) {
    lif_backward_block<scalar_t, kSurrogate, false, true>(gp, hp, sigp, out, steps, neurons, begin, end, decay,
                                                          inv_tau, threshold, rest, alpha);
  } else {
    lif_backward_block<scalar_t, kSurrogate, false, false>(gp, hp, sigp, out, steps, neurons, begin, end, decay,
                                                           inv_tau, threshold, rest, alpha);
  }
}

// ∂L/∂x from ∂L/∂s and the saved pre-reset membranes h (see _LIFMultiStep's docstring for the equations).
// ``sigmoid`` holds σ(α(h − ϑ)) when the surrogate is the sigmoid (computed by torch's vectorised kernel;
// exp is the one transcendental here), and is ignored otherwise.
torch::Tensor lif_backward(torch::Tensor grad_spikes, torch::Tensor membrane, torch::Tensor sigmoid, double tau,
                           double v_threshold, double v_reset, bool soft_reset, bool detach_reset,
                           int64_t surrogate, double alpha) {
  TORCH_CHECK(membrane.device().is_cpu(), "lif_backward: CPU tensors are expected");
  TORCH_CHECK(surrogate >= kSigmoid && surrogate <= kTriangle, "lif_backward: unknown surrogate");
  const auto grad = grad_spikes.contiguous();
  const auto h_all = membrane.contiguous();
  TORCH_CHECK(surrogate != kSigmoid || sigmoid.numel() == h_all.numel(), "lif_backward: σ(α(h − ϑ)) needed");
  const auto sig = surrogate == kSigmoid ? sigmoid.contiguous() : h_all;
  const int64_t steps = h_all.size(0);
  const int64_t neurons = steps ? h_all.numel() / steps : 0;
  auto grad_x = torch::empty_like(h_all);
  AT_DISPATCH_FLOATING_TYPES(h_all.scalar_type(), "lif_backward", [&] {
    const scalar_t* gp = grad.data_ptr<scalar_t>();
    const scalar_t* hp = h_all.data_ptr<scalar_t>();
    const scalar_t* sigp = sig.data_ptr<scalar_t>();
    scalar_t* out = grad_x.data_ptr<scalar_t>();
    const scalar_t decay = scalar_t(1) - scalar_t(1) / scalar_t(tau);
    const scalar_t inv_tau = scalar_t(1) / scalar_t(tau);
    const scalar_t threshold = scalar_t(v_threshold);
    const scalar_t rest = scalar_t(v_reset);
    const scalar_t a = scalar_t(alpha);
    at::parallel_for(0, neurons, kGrain, [&](int64_t begin, int64_t end) {
      switch (surrogate) {
        case kSigmoid:
          lif_backward_dispatch<scalar_t, kSigmoid>(soft_reset, detach_reset, gp, hp, sigp, out, steps, neurons,
                                                    begin, end, decay, inv_tau, threshold, rest, a);
          break;
        case kArctan:
          lif_backward_dispatch<scalar_t, kArctan>(soft_reset, detach_reset, gp, hp, sigp, out, steps, neurons,
                                                   begin, end, decay, inv_tau, threshold, rest, a);
          break;
        case kFastSigmoid:
          lif_backward_dispatch<scalar_t, kFastSigmoid>(soft_reset, detach_reset, gp, hp, sigp, out, steps,
                                                        neurons, begin, end, decay, inv_tau, threshold, rest, a);
          break;
        default:
          lif_backward_dispatch<scalar_t, kTriangle>(soft_reset, detach_reset, gp, hp, sigp, out, steps, neurons,
                                                     begin, end, decay, inv_tau, threshold, rest, a);
      }
    });
  });
  return grad_x;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("lif_forward", &lif_forward, "fused multi-step LIF forward (CPU)");
  m.def("lif_backward", &lif_backward, "fused multi-step LIF surrogate backward (CPU)");
}
