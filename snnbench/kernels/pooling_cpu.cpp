// Average pooling over k × k windows with stride k, no padding, floor mode (the AP2 layers and the methods'
// own average pools, through snnbench/pooling.py) on CPU tensors [N, C, H, W] (float32/float64). ATen's
// contiguous kernel (cpu_avg_pool) recomputes the window's bounds and divisor for every output element: on
// the small maps of spiking networks it takes 5-15x a pass over the same memory (benchmarks/pooling.py).
// These loops walk the rows of each plane instead.
//
// The arithmetic is ATen's, operation for operation: sum = 0, += the window in row-major order, output =
// 0 + sum / (k·k) (ATen zeroes the output and adds the quotient); backward: grad_input = 0 + grad_output /
// (k·k) inside the windows, 0 in the rows and columns no window covers. Outputs are bit-identical to
// torch.nn.functional.avg_pool2d and its gradient (tests/test_pooling.py).
#include <torch/extension.h>

#include <algorithm>

namespace {

torch::Tensor checked(const torch::Tensor& x, const char* name) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 4, name, ": a CPU tensor [N, C, H, W] is expected");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, name, ": float32 or float64");
  return x.contiguous();
}

// planes per parallel task: at least ~32k elements each
int64_t grain(int64_t plane_elements) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, plane_elements)); }

}  // namespace

// One plane [height, width] → [height / K, width / K]; K a compile-time constant where it is 2 (the
// unrolled window lets the compiler vectorise across outputs), a runtime one (K = 0 → k) otherwise.
template <typename scalar_t, int64_t K>
void pool_plane(const scalar_t* plane, scalar_t* out_plane, int64_t k_runtime, int64_t width, int64_t out_h,
                int64_t out_w) {
  const int64_t k = K ? K : k_runtime, divide_factor = k * k;
  for (int64_t oh = 0; oh < out_h; ++oh) {
    const scalar_t* top = plane + oh * k * width;
    scalar_t* out_row = out_plane + oh * out_w;
    for (int64_t ow = 0; ow < out_w; ++ow) {
      scalar_t sum = 0;
      for (int64_t ih = 0; ih < k; ++ih) {
        for (int64_t iw = 0; iw < k; ++iw) {
          sum += top[ih * width + ow * k + iw];
        }
      }
      out_row[ow] = scalar_t(0) + sum / divide_factor;
    }
  }
}

torch::Tensor avg_pool_forward(torch::Tensor input, int64_t k) {
  TORCH_CHECK(k >= 1, "avg_pool_forward: window >= 1");
  const auto x = checked(input, "avg_pool_forward");
  const int64_t height = x.size(2), width = x.size(3), out_h = height / k, out_w = width / k;
  auto out = torch::empty({x.size(0), x.size(1), out_h, out_w}, x.options());
  const int64_t planes = x.size(0) * x.size(1);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "avg_pool_forward", [&] {
    const scalar_t* in = x.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, planes, grain(height * width), [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const scalar_t* plane = in + p * height * width;
        scalar_t* out_plane = o + p * out_h * out_w;
        if (k == 2) {
          pool_plane<scalar_t, 2>(plane, out_plane, k, width, out_h, out_w);
        } else {
          pool_plane<scalar_t, 0>(plane, out_plane, k, width, out_h, out_w);
        }
      }
    });
  });
  return out;
}

// The gradient of one plane: 0 + grad_output / (k·k) over each window, 0 where no window reaches.
template <typename scalar_t, int64_t K>
void unpool_plane(const scalar_t* out_plane, scalar_t* plane, int64_t k_runtime, int64_t height, int64_t width,
                  int64_t out_h, int64_t out_w) {
  const int64_t k = K ? K : k_runtime, divide_factor = k * k;
  for (int64_t ih = 0; ih < height; ++ih) {
    scalar_t* row = plane + ih * width;
    int64_t covered = 0;
    if (ih < out_h * k) {
      const scalar_t* out_row = out_plane + (ih / k) * out_w;
      for (int64_t ow = 0; ow < out_w; ++ow) {
        const scalar_t delta = out_row[ow] / divide_factor;
        for (int64_t j = 0; j < k; ++j) {
          row[ow * k + j] = scalar_t(0) + delta;
        }
      }
      covered = out_w * k;
    }
    for (int64_t iw = covered; iw < width; ++iw) {
      row[iw] = scalar_t(0);
    }
  }
}

torch::Tensor avg_pool_backward(torch::Tensor grad_output, int64_t k, int64_t height, int64_t width) {
  TORCH_CHECK(k >= 1, "avg_pool_backward: window >= 1");
  const auto g = checked(grad_output, "avg_pool_backward");
  const int64_t out_h = g.size(2), out_w = g.size(3);
  TORCH_CHECK(out_h == height / k && out_w == width / k, "avg_pool_backward: output ", out_h, "x", out_w,
              " is not the pooled size of ", height, "x", width, " with window ", k);
  auto grad_input = torch::empty({g.size(0), g.size(1), height, width}, g.options());
  const int64_t planes = g.size(0) * g.size(1);
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "avg_pool_backward", [&] {
    const scalar_t* go = g.data_ptr<scalar_t>();
    scalar_t* gi = grad_input.data_ptr<scalar_t>();
    at::parallel_for(0, planes, grain(height * width), [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const scalar_t* out_plane = go + p * out_h * out_w;
        scalar_t* plane = gi + p * height * width;
        if (k == 2) {
          unpool_plane<scalar_t, 2>(out_plane, plane, k, height, width, out_h, out_w);
        } else {
          unpool_plane<scalar_t, 0>(out_plane, plane, k, height, width, out_h, out_w);
        }
      }
    });
  });
  return grad_input;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("avg_pool_forward", &avg_pool_forward, "k x k average pooling, stride k, no padding (CPU)");
  m.def("avg_pool_backward", &avg_pool_backward, "its gradient with respect to the input (CPU)");
}
