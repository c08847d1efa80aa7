// ST-RSBP's loops over time on CPU tensors [T, ...] (float32/float64), one pass over memory each instead of a
// Python loop of small torch ops per step (snnbench/algorithms/st_rsbp.py keeps those as the fallback).
//
// Each loop repeats the fallback's arithmetic operation for operation, in the same order and precision
// (scalars cast to the tensor's type as torch casts a Python float; built with -ffp-contract=off, so no
// multiply-add is fused): the outputs are bit-identical to the torch-ops path (tests/test_st_rsbp.py). The
// recurrent or lateral input of ``integrate`` is at::linear of the previous step's spikes, the same call the
// fallback's nn.Linear makes.
#include <torch/extension.h>

#include <algorithm>
#include <vector>

namespace {

torch::Tensor checked(const torch::Tensor& x, const char* name) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() >= 1, name, ": a CPU tensor [T, ...] is expected");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, name, ": float32 or float64");
  return x.contiguous();
}

}  // namespace

// Spikes [T, ...] of eq.-(1) neurons driven by ``feedforward`` (applied one step later) plus, where given,
// ``lateral`` = at::linear(spikes[t − 1], weight) (step 0 never fires).
torch::Tensor integrate(torch::Tensor feedforward, c10::optional<torch::Tensor> lateral_weight, double threshold,
                        double tau_m, double tau_s, int64_t refractory) {
  const auto ff = checked(feedforward, "integrate");
  auto spikes = torch::zeros_like(ff);
  const int64_t steps = ff.size(0);
  if (steps < 2) {
    return spikes;
  }
  const int64_t n = ff.numel() / steps;
  const auto weight = lateral_weight.has_value() ? lateral_weight->detach() : torch::Tensor();
  AT_DISPATCH_FLOATING_TYPES(ff.scalar_type(), "integrate", [&] {
    const scalar_t syn_decay = scalar_t(1.0 - 1.0 / tau_s), mem_decay = scalar_t(1.0 - 1.0 / tau_m);
    const scalar_t ts = scalar_t(tau_s), theta = scalar_t(threshold), hold_steps = scalar_t(refractory);
    std::vector<scalar_t> eps(n, 0), v(n, 0), hold(n, 0);
    const scalar_t* in = ff.data_ptr<scalar_t>();
    scalar_t* out = spikes.data_ptr<scalar_t>();
    for (int64_t t = 1; t < steps; ++t) {
      torch::Tensor lateral;
      const scalar_t* lat = nullptr;
      if (weight.defined()) {
        lateral = at::linear(spikes.select(0, t - 1), weight).contiguous();
        lat = lateral.data_ptr<scalar_t>();
      }
      const scalar_t* f = in + (t - 1) * n;
      scalar_t* s = out + t * n;
      for (int64_t i = 0; i < n; ++i) {
        scalar_t e = syn_decay * eps[i];
        e = e + f[i];
        if (lat != nullptr) {
          e = e + lat[i];
        }
        eps[i] = e;
        const scalar_t leaked = mem_decay * v[i];
        const scalar_t input = e / ts;
        scalar_t u = leaked + input;
        const bool in_refractory = hold[i] > scalar_t(0);
        if (in_refractory) {
          u = scalar_t(0);
        }
        scalar_t h = hold[i] - (in_refractory ? scalar_t(1) : scalar_t(0));
        const bool fired = u > theta;
        s[i] = fired ? scalar_t(1) : scalar_t(0);
        if (fired) {
          u = scalar_t(0);
          h = hold_steps;
        }
        v[i] = u;
        hold[i] = h;
      }
    }
  });
  return spikes;
}

// P(t) = p(t)/τ_s with p(t) = (1 − 1/τ_s) p(t − 1) + pre(t − 1), p(0) = 0.
torch::Tensor presynaptic_traces(torch::Tensor pre, double tau_s) {
  const auto x = checked(pre, "presynaptic_traces");
  auto out = torch::empty_like(x);
  const int64_t steps = x.size(0);
  const int64_t n = steps ? x.numel() / steps : 0;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "presynaptic_traces", [&] {
    const scalar_t decay = scalar_t(1.0 - 1.0 / tau_s), ts = scalar_t(tau_s);
    std::vector<scalar_t> p(n, 0);
    const scalar_t* in = x.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    for (int64_t t = 0; t < steps; ++t) {
      for (int64_t i = 0; i < n; ++i) {
        if (t > 0) {
          const scalar_t leaked = decay * p[i];
          p[i] = leaked + in[(t - 1) * n + i];
        }
        o[t * n + i] = p[i] / ts;
      }
    }
  });
  return out;
}

// K(t) = post(t) + (1 − post(t)) m K(t + 1) backwards in time, m = 1 − 1/τ_m, times 1 − max(post(t − 1), …,
// post(t − refractory)) (0 at the refractory steps after each spike).
torch::Tensor postsynaptic_kernel(torch::Tensor post, double tau_m, int64_t refractory) {
  const auto x = checked(post, "postsynaptic_kernel");
  auto out = torch::empty_like(x);
  const int64_t steps = x.size(0);
  const int64_t n = steps ? x.numel() / steps : 0;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "postsynaptic_kernel", [&] {
    const scalar_t decay = scalar_t(1.0 - 1.0 / tau_m);
    std::vector<scalar_t> g(n, 0);
    const scalar_t* in = x.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    for (int64_t t = steps - 1; t >= 0; --t) {
      const scalar_t* s = in + t * n;
      for (int64_t i = 0; i < n; ++i) {
        scalar_t carried = scalar_t(1) - s[i];
        carried = carried * decay;
        carried = carried * g[i];
        g[i] = s[i] + carried;
        scalar_t mask = scalar_t(0);
        for (int64_t lag = 1; lag <= std::min(refractory, t); ++lag) {
          mask = std::max(mask, in[(t - lag) * n + i]);
        }
        o[t * n + i] = g[i] * (scalar_t(1) - mask);
      }
    }
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("integrate", &integrate, "ST-RSBP neurons over T steps (CPU)");
  m.def("presynaptic_traces", &presynaptic_traces, "ST-RSBP presynaptic traces over T steps (CPU)");
  m.def("postsynaptic_kernel", &postsynaptic_kernel, "ST-RSBP postsynaptic kernel over T steps (CPU)");
}
