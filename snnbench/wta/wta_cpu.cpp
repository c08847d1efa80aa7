// stdp-adaptive's T-step simulation (snnbench/algorithms/stdp_adaptive.py, eqs. 3-5: leaky neurons with reset,
// winner-take-all over dim 1 with random tie-breaks, adaptive lateral inhibition) as one native loop instead of
// about fifteen torch ops per step on the whole [B, N, S] tensor.
//
// Equal to the torch-ops loop ``simulate_torch`` of that module, which stays the fallback and the reference
// (tests/algorithms/test_stdp_adaptive_native.py):
// - the arithmetic repeats the fallback's operation by operation in the same precision (decay cast to the
//   tensor's type as torch casts a Python float; built with -ffp-contract=off, so no multiply-add is fused);
// - the random numbers are torch's own: the fallback draws torch.rand(B, N, S) at every step where some neuron of
//   the batch fires, i.e. one 32-bit Mersenne-twister output per element for float32 (two, high word first,
//   for float64) from the generator's engine (ATen/core/MT19937RNGEngine.h), the value (word & (2^24 − 1)) / 2^24
//   (2^53 for float64). The kernel advances a copy of the same engine by exactly as many outputs (twisting every
//   block, so the generator's state afterwards is the fallback's) but tempers only the words of positions where
//   two or more neurons fire — the only ones whose draw decides anything — and compares them as integers (the
//   map to [0, 1) is exact and increasing). The winners of a position are its firing neurons whose draw equals
//   the largest draw among them (ties keep every tied neuron, as the fallback's ``score >= max``).
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/MT19937RNGEngine.h>
#include <torch/extension.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <tuple>
#include <vector>

namespace {

constexpr int kN = at::MERSENNE_STATE_N;  // 624
constexpr int kM = at::MERSENNE_STATE_M;  // 397
constexpr uint32_t kMatrixA = 0x9908b0df, kUpper = 0x80000000, kLower = 0x7fffffff;

inline uint32_t twist(uint32_t u, uint32_t v) { return (((u & kUpper) | (v & kLower)) >> 1) ^ ((v & 1) ? kMatrixA : 0); }

inline uint32_t temper(uint32_t y) {
  y ^= (y >> 11);
  y ^= (y << 7) & 0x9d2c5680;
  y ^= (y << 15) & 0xefc60000;
  y ^= (y >> 18);
  return y;
}

// A copy of the engine's state advanced as at::mt19937::operator() advances it, block by block.
struct Stream {
  at::mt19937_data_pod d;

  void next_state() {  // at::mt19937::next_state
    uint32_t* p = d.state_.data();
    for (int j = 0; j < kN - kM; ++j) p[j] = p[j + kM] ^ twist(p[j], p[j + 1]);
    for (int j = kN - kM; j < kN - 1; ++j) p[j] = p[j + kM - kN] ^ twist(p[j], p[j + 1]);
    p[kN - 1] = p[kM - 1] ^ twist(p[kN - 1], p[0]);
  }

  // The untempered words of the next n outputs into out (nullptr: only advance).
  void fill(uint32_t* out, int64_t n) {
    while (n > 0) {
      if (d.left_ == 1) {  // operator(): --left_ == 0 → next_state(), left_ = N, next_ = 0, then one output
        next_state();
        d.left_ = kN + 1;
        d.next_ = 0;
      }
      const int64_t k = std::min<int64_t>(n, d.left_ - 1);
      if (out != nullptr) {
        std::memcpy(out, d.state_.data() + d.next_, sizeof(uint32_t) * k);
        out += k;
      }
      d.next_ += static_cast<uint32_t>(k);
      d.left_ -= static_cast<int>(k);
      n -= k;
    }
  }
};

// The integer behind one element's U(0, 1) draw: 24 bits of one word (float), 53 of two (double, high first).
template <typename scalar_t>
struct Draw {
  using key_t = uint32_t;
  static constexpr int64_t words = 1;  // engine outputs per element
  static key_t key(const uint32_t* w, int64_t i) { return temper(w[i]) & ((uint32_t(1) << 24) - 1); }
};
template <>
struct Draw<double> {
  using key_t = uint64_t;
  static constexpr int64_t words = 2;
  static key_t key(const uint32_t* w, int64_t i) {
    return ((uint64_t(temper(w[2 * i])) << 32) | temper(w[2 * i + 1])) & ((uint64_t(1) << 53) - 1);
  }
};

// One sample of one step: v ← v·λ + I; s = [v > θ]; v ← v·(1 − s) over the N×S neurons; returns how many fired
// (``fired`` marks them, ``n_fired`` counts them per position).
template <typename scalar_t>
int64_t integrate(scalar_t* v, const scalar_t* I, const scalar_t* th, int64_t tn, int64_t ts, int64_t N, int64_t S,
                  scalar_t decay, uint8_t* fired, int32_t* n_fired) {
  const scalar_t zero = 0, one = 1;
  int64_t total = 0;
  if (S == 1) {  // the fc layer: one position, neurons contiguous
    for (int64_t n = 0; n < N; ++n) {
      const scalar_t u = v[n] * decay + I[n];
      const bool f = u > th[n * tn];
      v[n] = u * (f ? zero : one);
      fired[n] = f;
      total += f;
    }
    n_fired[0] = static_cast<int32_t>(total);
    return total;
  }
  std::fill(n_fired, n_fired + S, 0);
  for (int64_t n = 0; n < N; ++n) {
    scalar_t* vn = v + n * S;
    const scalar_t* In = I + n * S;
    uint8_t* fn = fired + n * S;
    if (ts == 0) {  // the conv layer: one threshold per channel
      const scalar_t t = th[n * tn];
      for (int64_t s = 0; s < S; ++s) {
        const scalar_t u = vn[s] * decay + In[s];
        const bool f = u > t;
        vn[s] = u * (f ? zero : one);
        fn[s] = f;
        n_fired[s] += f;
      }
    } else {
      const scalar_t* tp = th + n * tn;
      for (int64_t s = 0; s < S; ++s) {
        const scalar_t u = vn[s] * decay + In[s];
        const bool f = u > tp[s * ts];
        vn[s] = u * (f ? zero : one);
        fn[s] = f;
        n_fired[s] += f;
      }
    }
  }
  for (int64_t s = 0; s < S; ++s) total += n_fired[s];
  return total;
}

// The winners of one sample (its firing neurons whose draw is the largest among the firing neurons of their
// position) counted, and v ← v − inh·(max_n won − won) at every position where some neuron fired.
template <typename scalar_t>
void compete(scalar_t* v, scalar_t* counts, const scalar_t* inh, int64_t in_n, int64_t in_s, int64_t N, int64_t S,
             const uint8_t* fired, const int32_t* n_fired, const uint32_t* words) {
  using key_t = typename Draw<scalar_t>::key_t;
  const scalar_t zero = 0, one = 1;
  if (S == 1) {  // the fc layer: few neurons fire, all N are inhibited
    std::vector<int64_t> firing, winners;
    int64_t n = 0;
    for (; n + 8 <= N; n += 8) {  // the few firing neurons, eight flags at a time
      uint64_t flags;
      std::memcpy(&flags, fired + n, 8);
      if (flags == 0) continue;
      for (int64_t k = n; k < n + 8; ++k) {
        if (fired[k]) firing.push_back(k);
      }
    }
    for (; n < N; ++n) {
      if (fired[n]) firing.push_back(n);
    }
    key_t top = 0;
    if (firing.size() > 1) {
      for (const int64_t k : firing) top = std::max(top, Draw<scalar_t>::key(words, k));
    }
    for (const int64_t k : firing) {
      if (firing.size() == 1 || Draw<scalar_t>::key(words, k) >= top) winners.push_back(k);
    }
    std::vector<scalar_t> kept(winners.size());
    for (size_t i = 0; i < winners.size(); ++i) kept[i] = v[winners[i]];
    if (in_n == 0) {  // v − inh·(1 − 0) for every neuron, then the winners' v − inh·(1 − 1) from their v
      const scalar_t inh0 = inh[0] * (one - zero);
      for (int64_t k = 0; k < N; ++k) v[k] = v[k] - inh0;
    } else {
      for (int64_t k = 0; k < N; ++k) v[k] = v[k] - inh[k * in_n] * (one - zero);
    }
    for (size_t i = 0; i < winners.size(); ++i) {
      const int64_t k = winners[i];
      v[k] = kept[i] - inh[k * in_n] * (one - one);
      counts[k] = counts[k] + one;
    }
    return;
  }
  for (int64_t s = 0; s < S; ++s) {  // the conv layer: positions where some channel fires, channel by channel
    const int32_t count = n_fired[s];
    if (count == 0) continue;  // v − inh·0 is v
    key_t top = 0;
    if (count > 1) {
      for (int64_t n = 0; n < N; ++n) {
        if (fired[n * S + s]) top = std::max(top, Draw<scalar_t>::key(words, n * S + s));
      }
    }
    for (int64_t n = 0; n < N; ++n) {
      const int64_t e = n * S + s;
      const bool won = fired[e] && (count == 1 || Draw<scalar_t>::key(words, e) >= top);
      const scalar_t w = won ? one : zero;
      v[e] = v[e] - inh[n * in_n + s * in_s] * (one - w);
      counts[e] = counts[e] + w;
    }
  }
}

}  // namespace

// Spike counts [B, N, S] of T steps driven by the constant ``current`` [B, N, S] (neurons along dim 1, positions
// (b, s)); ``threshold`` and ``inhibition`` of the same shape (expanded views with zero strides are fine); and
// whether the sample-major order ran (``sample_major`` false: the step-major order only, for the tests).
//
// Orders. Step-major repeats the fallback's loop: every sample at step t, then step t + 1 (the state of the
// whole batch streams through memory at every step). Sample-major runs one sample through all T steps (its
// state stays in cache) with one engine copy per step, each positioned at that step's draw: it needs to know
// in advance which steps draw (some neuron of the batch fires). Before the batch's first firing step t0 no
// neuron is inhibited or draws, so t0 is found by integrating each sample alone until it first fires; the
// sample-major pass then assumes that every step from t0 on draws and checks it: if some step t ≥ t0 had no
// firing neuron in the whole batch, the guess was wrong, and the step-major order runs from the start instead.
// (If every step t ≥ t0 fired somewhere, every sample saw the fallback's random stream: by induction over t.)
std::tuple<torch::Tensor, bool> simulate(torch::Tensor current, torch::Tensor threshold, double decay,
                                         torch::Tensor inhibition, int64_t T, c10::optional<at::Generator> generator,
                                         bool sample_major) {
  TORCH_CHECK(current.device().is_cpu() && current.dim() == 3, "simulate: a CPU tensor [B, N, S] is expected");
  TORCH_CHECK(current.scalar_type() == at::kFloat || current.scalar_type() == at::kDouble, "float32 or float64");
  TORCH_CHECK(threshold.sizes() == current.sizes() && inhibition.sizes() == current.sizes(),
              "simulate: threshold and inhibition must be expanded to the current's shape");
  TORCH_CHECK(threshold.scalar_type() == current.scalar_type() && inhibition.scalar_type() == current.scalar_type(),
              "simulate: one dtype");
  TORCH_CHECK(threshold.device().is_cpu() && inhibition.device().is_cpu(), "simulate: CPU tensors");
  const auto in = current.contiguous();
  auto counts = torch::zeros_like(in);
  const int64_t B = in.size(0), N = in.size(1), S = in.size(2), per_sample = N * S;
  auto* gen = at::get_generator_or_default<at::CPUGeneratorImpl>(generator, at::detail::getDefaultCPUGenerator());
  std::lock_guard<std::mutex> lock(gen->mutex_);
  at::mt19937 engine = gen->engine();
  const Stream start{engine.data()};
  Stream stream = start;
  bool sample_major_ran = false;
  AT_DISPATCH_FLOATING_TYPES(in.scalar_type(), "simulate", [&] {
    constexpr int64_t words = Draw<scalar_t>::words;
    const int64_t sample_words = per_sample * words, step_words = B * sample_words;  // outputs of one draw
    const scalar_t dec = static_cast<scalar_t>(decay);  // as torch casts the Python float
    const scalar_t* I = in.data_ptr<scalar_t>();
    const scalar_t* th = threshold.data_ptr<scalar_t>();
    const scalar_t* inh = inhibition.data_ptr<scalar_t>();
    const int64_t tb = threshold.stride(0), tn = threshold.stride(1), ts = threshold.stride(2);
    const int64_t ib = inhibition.stride(0), in_n = inhibition.stride(1), is = inhibition.stride(2);
    scalar_t* out = counts.data_ptr<scalar_t>();
    std::vector<uint8_t> fired(per_sample);
    std::vector<int32_t> n_fired(S);
    std::vector<uint32_t> buffer(sample_words);
    auto sample_step = [&](scalar_t* vb, int64_t b, Stream& draws, int64_t& drawn) -> bool {
      const int64_t total = integrate<scalar_t>(vb, I + b * per_sample, th + b * tb, tn, ts, N, S, dec,
                                                fired.data(), n_fired.data());
      if (total == 0) return false;  // nothing fires in this sample: its v − inh·0 is v
      draws.fill(nullptr, b * sample_words - drawn);  // the draws of the samples before
      draws.fill(buffer.data(), sample_words);
      drawn = (b + 1) * sample_words;
      compete<scalar_t>(vb, out + b * per_sample, inh + b * ib, in_n, is, N, S, fired.data(), n_fired.data(),
                        buffer.data());
      return true;
    };
    if (sample_major && T > 0) {
      std::vector<scalar_t> vb(per_sample);
      int64_t t0 = T;  // the batch's first firing step
      for (int64_t b = 0; b < B; ++b) {
        std::fill(vb.begin(), vb.end(), scalar_t(0));
        for (int64_t t = 0; t < t0; ++t) {
          if (integrate<scalar_t>(vb.data(), I + b * per_sample, th + b * tb, tn, ts, N, S, dec, fired.data(),
                                  n_fired.data()) > 0) {
            t0 = t;
            break;
          }
        }
      }
      std::vector<Stream> draws(T, start);  // engine copies at the start of each step's draw
      Stream ahead = start;
      for (int64_t t = 0; t < T; ++t) {
        draws[t] = ahead;
        if (t >= t0) ahead.fill(nullptr, step_words);
      }
      std::vector<int64_t> drawn(T, 0);
      std::vector<uint8_t> fired_at(T, 0);
      bool ok = true;
      for (int64_t b = 0; b < B && ok; ++b) {
        std::fill(vb.begin(), vb.end(), scalar_t(0));
        for (int64_t t = 0; t < T; ++t) {
          if (sample_step(vb.data(), b, draws[t], drawn[t])) {
            fired_at[t] = 1;
            if (t < t0) ok = false;  // cannot happen (t0 is the first firing step): checked all the same
          }
        }
      }
      for (int64_t t = t0; t < T; ++t) ok = ok && fired_at[t];
      if (ok) {
        stream = ahead;
        sample_major_ran = true;
        return;
      }
      counts.zero_();  // a step without any firing neuron: the guess was wrong, start again step-major
    }
    std::vector<scalar_t> v(B * per_sample, scalar_t(0));
    for (int64_t t = 0; t < T; ++t) {
      bool any = false;
      int64_t drawn = 0;  // outputs of this step's draw consumed so far (the draw covers the whole batch)
      for (int64_t b = 0; b < B; ++b) any = sample_step(v.data() + b * per_sample, b, stream, drawn) || any;
      if (any) stream.fill(nullptr, step_words - drawn);  // the rest of the step's draw
    }
  });
  engine.set_data(stream.d);
  gen->set_engine(engine);
  return {counts, sample_major_ran};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("simulate", &simulate, "stdp-adaptive: T steps of leaky neurons, winner-take-all and inhibition");
}
