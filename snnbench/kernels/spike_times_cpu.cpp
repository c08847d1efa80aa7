// STDBP's exact spike times (eq. 3) and their exact gradients (eq. 4) on CPU tensors, float32/float64.
//
// The torch-ops formulation in snnbench/algorithms/stdbp.py (kept as the fallback) builds [R, N_in, N_out]
// tensors of prefix sums over every sorted input for every neuron; here each (row, neuron) pair walks its
// sorted inputs and stops at the first crossing, and the backward pass touches only the inputs before it.
// Every value is computed as the fallback computes it: prefix sums accumulated in double and rounded to the
// tensor's type after each input (torch's CPU cumsum), Python scalars cast to the tensor's type, each
// operation rounded on its own (built with -ffp-contract=off), and the weight gradient summed over rows in
// row order (torch's index_put_ with accumulate). The one reduction whose order is torch's own, the input-time
// gradient's sum over neurons, is left to at::sum on the [R, N_in, N_out] product autograd reduces (formed a
// block of rows at a time: each row's sum is the same). The outputs and gradients are bit-identical to the
// fallback's on one thread (on more, the fallback's own index_put_ adds float32 rows atomically, in no fixed
// order; tests/algorithms/test_stdbp.py).
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

namespace {

void check(const torch::Tensor& x, const char* name, int64_t dim) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == dim && x.is_contiguous(), name, ": a contiguous CPU tensor of ",
              dim, " dimensions is expected");
}

}  // namespace

// First firing times [R, N_out] of eq. (3) for inputs sorted by time (``t_sorted``, ``order``: torch's sort of
// the input times [R, N_in], inf = silent) and weights ``w`` [N_out, N_in]; also the index (into the sorted
// inputs) of each neuron's last causal input (-1: silent) and the slope Σ_C w at its crossing.
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> spike_times_forward(torch::Tensor t_sorted,
                                                                            torch::Tensor order,
                                                                            torch::Tensor w, double threshold) {
  check(t_sorted, "t_sorted", 2);
  check(order, "order", 2);
  check(w, "w", 2);
  TORCH_CHECK(order.scalar_type() == at::kLong && w.scalar_type() == t_sorted.scalar_type(), "dtypes");
  TORCH_CHECK(order.sizes() == t_sorted.sizes() && w.size(1) == t_sorted.size(1), "shapes");
  const int64_t rows = t_sorted.size(0), n_in = t_sorted.size(1), n_out = w.size(0);
  auto t_out = torch::empty({rows, n_out}, t_sorted.options());
  auto last = torch::empty({rows, n_out}, order.options());
  auto slope = torch::empty({rows, n_out}, t_sorted.options());
  AT_DISPATCH_FLOATING_TYPES(t_sorted.scalar_type(), "spike_times_forward", [&] {
    const scalar_t inf = std::numeric_limits<scalar_t>::infinity();
    const scalar_t theta = scalar_t(threshold), min_slope = scalar_t(1e-9);
    const scalar_t* ts = t_sorted.data_ptr<scalar_t>();
    const int64_t* idx = order.data_ptr<int64_t>();
    const scalar_t* wp = w.data_ptr<scalar_t>();
    scalar_t* out = t_out.data_ptr<scalar_t>();
    int64_t* lp = last.data_ptr<int64_t>();
    scalar_t* sp = slope.data_ptr<scalar_t>();
    at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const scalar_t* t = ts + r * n_in;
        const int64_t* j = idx + r * n_in;
        for (int64_t o = 0; o < n_out; ++o) {
          const scalar_t* wo = wp + o * n_in;
          double sum_w = 0.0, sum_wt = 0.0;  // torch's cumsum accumulates float in double
          scalar_t time = inf, at_slope = scalar_t(0);
          int64_t found = -1;
          for (int64_t i = 0; i < n_in && std::isfinite(t[i]); ++i) {  // inf sorts last and never fires
            const scalar_t weight = wo[j[i]];
            const scalar_t weighted = weight * t[i];
            sum_w += weight;
            sum_wt += weighted;
            const scalar_t w_cum = scalar_t(sum_w), wt_cum = scalar_t(sum_wt);
            if (!(w_cum > min_slope)) {
              continue;
            }
            const scalar_t candidate = (theta + wt_cum) / w_cum;
            const scalar_t following = i + 1 < n_in ? t[i + 1] : inf;
            if (candidate >= t[i] && candidate < following) {
              time = candidate, at_slope = w_cum, found = i;
              break;
            }
          }
          out[r * n_out + o] = time;
          lp[r * n_out + o] = found;
          sp[r * n_out + o] = at_slope;
        }
      }
    });
  });
  return {t_out, last, slope};
}

// Gradients of the forward's times: (w [N_out, N_in], input times [R, N_in] or an undefined tensor when
// ``input_grad`` is false; its per-pair factors are formed ``block_pairs`` at a time). With C the causal inputs of a firing neuron, S = Σ_C w and t_o its time:
// ∂t_o/∂w_j = 1/S · t_j − t_o/S (as autograd composes eq. 3: ∂/∂(ϑ + Σ w t) and ∂/∂S), ∂t_o/∂t_j = w_j / S.
std::tuple<torch::Tensor, torch::Tensor> spike_times_backward(torch::Tensor grad, torch::Tensor t_sorted,
                                                              torch::Tensor order, torch::Tensor w,
                                                              torch::Tensor t_out, torch::Tensor last,
                                                              torch::Tensor slope, bool input_grad,
                                                              int64_t block_pairs) {
  for (const auto* x : {&grad, &t_out, &last, &slope}) {
    check(*x, "saved tensor", 2);
  }
  const int64_t rows = t_sorted.size(0), n_in = t_sorted.size(1), n_out = w.size(0);
  auto grad_w = torch::zeros_like(w);
  auto grad_sorted = input_grad ? torch::zeros({rows, n_in}, w.options()) : torch::Tensor();
  // the per-pair factors of the input-time gradient, reduced over neurons by at::sum as autograd does, for
  // a block of rows at a time (at most ``block_pairs`` pairs unless one row has more: a conv layer's
  // rows × fan-in × channels can be GBs)
  const int64_t block = std::max<int64_t>(1, block_pairs / std::max<int64_t>(1, n_in * n_out));
  for (int64_t first = 0; first < rows; first += block) {
    const int64_t count = std::min(block, rows - first);
    auto pairs = input_grad ? torch::zeros({count, n_in, n_out}, w.options()) : torch::Tensor();
    AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "spike_times_backward", [&] {
      const scalar_t* g = grad.data_ptr<scalar_t>();
      const scalar_t* ts = t_sorted.data_ptr<scalar_t>();
      const int64_t* idx = order.data_ptr<int64_t>();
      const scalar_t* wp = w.data_ptr<scalar_t>();
      const scalar_t* tp = t_out.data_ptr<scalar_t>();
      const int64_t* lp = last.data_ptr<int64_t>();
      const scalar_t* sp = slope.data_ptr<scalar_t>();
      scalar_t* gw = grad_w.data_ptr<scalar_t>();
      scalar_t* pp = input_grad ? pairs.data_ptr<scalar_t>() : nullptr;
      // neurons are independent; within one, rows are summed in order (blocks come in row order)
      at::parallel_for(0, n_out, 1, [&](int64_t begin, int64_t end) {
        for (int64_t o = begin; o < end; ++o) {
          const scalar_t* wo = wp + o * n_in;
          scalar_t* gwo = gw + o * n_in;
          for (int64_t r = first; r < first + count; ++r) {
            const int64_t k = lp[r * n_out + o];
            if (k < 0) {
              continue;  // silent: no gradient
            }
            const scalar_t go = g[r * n_out + o], s = sp[r * n_out + o];
            const scalar_t d_numerator = go / s;  // ∂/∂(ϑ + Σ w t)
            const scalar_t d_slope = (-go) * (tp[r * n_out + o] / s);  // and S's: t_o = numerator / S
            const scalar_t* t = ts + r * n_in;
            const int64_t* j = idx + r * n_in;
            for (int64_t i = 0; i <= k; ++i) {
              gwo[j[i]] += d_slope + d_numerator * t[i];
              if (pp != nullptr) {
                pp[((r - first) * n_in + i) * n_out + o] = d_numerator * wo[j[i]];
              }
            }
          }
        }
      });
    });
    if (input_grad) {
      grad_sorted.narrow(0, first, count).copy_(at::sum(pairs, {2}));
    }
  }
  if (!input_grad) {
    return {grad_w, torch::Tensor()};
  }
  // inputs are finite up to each neuron's last causal input and get nothing after it; back to input order
  return {grad_w, torch::zeros_like(grad_sorted).scatter_(1, order, grad_sorted)};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("spike_times_forward", &spike_times_forward, "STDBP first firing times, eq. (3) (CPU)");
  m.def("spike_times_backward", &spike_times_backward, "STDBP exact spike-time gradients, eq. (4) (CPU)");
}
