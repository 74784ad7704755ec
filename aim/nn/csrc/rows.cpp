// Fused CPU kernels for interaction rows (see aim/nn/kernels.py): each row reads its factors
// straight from the slot blocks, a block of samples at a time, so no [R, d, B] gathered copy is
// ever written. Sources are [slots, d, B] float32 views with unit stride over B and d·B between
// dimensions of a slot (any stride between slots); outputs and gradients are contiguous.
// Blocks of samples are independent, so the threads split the batch and never write the same
// number; per-row parameter gradients are summed over blocks at the end.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

namespace {

constexpr int64_t BLOCK = 256;  // samples per block: a block of every source stays in L2

struct Source {
  const float* data;
  int64_t slot_stride;
};

Source source(const torch::Tensor& t, int64_t dim, int64_t batch) {
  TORCH_CHECK(t.dim() == 3 && t.size(1) == dim && t.size(2) == batch, "source must be [slots, d, B]");
  TORCH_CHECK(t.scalar_type() == torch::kFloat32 && t.device().is_cpu(), "source must be float32 on CPU");
  TORCH_CHECK(t.stride(2) == 1 && t.stride(1) == batch, "source must be unit-stride over B, then d");
  return {t.data_ptr<float>(), t.stride(0)};
}

int64_t blocks_of(int64_t batch) { return (batch + BLOCK - 1) / BLOCK; }

// out[b] = sum_d u[d] * v[d * batch + b] for the nb samples of a block: one projection u . x_slot.
inline void project(const float* v, const float* u, int64_t dim, int64_t batch, int64_t nb, float* out) {
#pragma omp simd
  for (int64_t b = 0; b < nb; ++b) out[b] = u[0] * v[b];
  for (int64_t d = 1; d < dim; ++d) {
    const float ud = u[d];
    const float* vd = v + d * batch;
#pragma omp simd
    for (int64_t b = 0; b < nb; ++b) out[b] += ud * vd[b];
  }
}

}  // namespace

// out[r, b] = sum_d w[r, d] * lead[pairs[r, 0], d, b] * x[pairs[r, 1], d, b]
torch::Tensor product_rows(torch::Tensor lead, torch::Tensor x, torch::Tensor pairs, torch::Tensor w) {
  const int64_t R = pairs.size(0), D = x.size(1), B = x.size(2);
  const Source L = source(lead, D, B), X = source(x, D, B);
  auto pairs_c = pairs.contiguous();
  auto w_c = w.contiguous();
  auto out = torch::empty({R, B}, x.options().memory_format(torch::MemoryFormat::Contiguous));
  const int64_t* P = pairs_c.data_ptr<int64_t>();
  const float* W = w_c.data_ptr<float>();
  float* O = out.data_ptr<float>();
  at::parallel_for(0, blocks_of(B), 1, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t b0 = blk * BLOCK, nb = std::min(BLOCK, B - b0);
      for (int64_t r = 0; r < R; ++r) {
        const float* l = L.data + P[2 * r] * L.slot_stride + b0;
        const float* v = X.data + P[2 * r + 1] * X.slot_stride + b0;
        const float* wr = W + r * D;
        float* o = O + r * B + b0;
#pragma omp simd
        for (int64_t b = 0; b < nb; ++b) o[b] = wr[0] * l[b] * v[b];
        for (int64_t d = 1; d < D; ++d) {
          const float wd = wr[d];
          const float* ld = l + d * B;
          const float* vd = v + d * B;
#pragma omp simd
          for (int64_t b = 0; b < nb; ++b) o[b] += wd * ld[b] * vd[b];
        }
      }
    }
  });
  return out;
}

// Gradients of product_rows for grad_out g [R, B]: (grad_lead, grad_x, grad_w), the first two
// contiguous [slots, d, B] (grad_lead undefined when `same` says lead is x: it is added to grad_x).
std::vector<torch::Tensor> product_rows_backward(
    torch::Tensor g, torch::Tensor lead, torch::Tensor x, torch::Tensor pairs, torch::Tensor w, bool same) {
  const int64_t R = pairs.size(0), D = x.size(1), B = x.size(2);
  const Source L = source(lead, D, B), X = source(x, D, B);
  auto g_c = g.contiguous();
  auto pairs_c = pairs.contiguous();
  auto w_c = w.contiguous();
  auto grad_x = torch::zeros({x.size(0), D, B}, x.options());
  auto grad_lead = same ? grad_x : torch::zeros({lead.size(0), D, B}, lead.options());
  const int64_t blocks = blocks_of(B);
  auto grad_w = torch::empty({blocks, R, D}, w.options());
  const int64_t* P = pairs_c.data_ptr<int64_t>();
  const float* W = w_c.data_ptr<float>();
  const float* G = g_c.data_ptr<float>();
  float* GL = grad_lead.data_ptr<float>();
  float* GX = grad_x.data_ptr<float>();
  float* GW = grad_w.data_ptr<float>();
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t b0 = blk * BLOCK, nb = std::min(BLOCK, B - b0);
      for (int64_t r = 0; r < R; ++r) {
        const int64_t q = P[2 * r], j = P[2 * r + 1];
        const float* gr = G + r * B + b0;
        for (int64_t d = 0; d < D; ++d) {
          const float wd = W[r * D + d];
          const float* ld = L.data + q * L.slot_stride + d * B + b0;
          const float* vd = X.data + j * X.slot_stride + d * B + b0;
          float* gld = GL + (q * D + d) * B + b0;
          float* gvd = GX + (j * D + d) * B + b0;
          float acc = 0.f;
#pragma omp simd reduction(+ : acc)
          for (int64_t b = 0; b < nb; ++b) {
            const float lv = ld[b], vv = vd[b], t = gr[b] * wd;
            acc += gr[b] * lv * vv;
            gvd[b] += t * lv;
            gld[b] += t * vv;
          }
          GW[(blk * R + r) * D + d] = acc;
        }
      }
    }
  });
  return {same ? torch::Tensor() : grad_lead, grad_x, grad_w.sum(0)};
}

// out[r, b] = prod_k sum_d u[r, k, d] * x[slots[r, k], d, b]   (rank-1 outer product rows)
torch::Tensor projected_rows(torch::Tensor x, torch::Tensor slots, torch::Tensor u) {
  const int64_t R = slots.size(0), p = slots.size(1), D = x.size(1), B = x.size(2);
  const Source X = source(x, D, B);
  auto slots_c = slots.contiguous();
  auto u_c = u.contiguous();
  auto out = torch::empty({R, B}, x.options().memory_format(torch::MemoryFormat::Contiguous));
  const int64_t* S = slots_c.data_ptr<int64_t>();
  const float* U = u_c.data_ptr<float>();
  float* O = out.data_ptr<float>();
  at::parallel_for(0, blocks_of(B), 1, [&](int64_t begin, int64_t end) {
    std::vector<float> s(BLOCK);
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t b0 = blk * BLOCK, nb = std::min(BLOCK, B - b0);
      for (int64_t r = 0; r < R; ++r) {
        float* o = O + r * B + b0;
        for (int64_t k = 0; k < p; ++k) {
          float* acc = k == 0 ? o : s.data();
          project(X.data + S[r * p + k] * X.slot_stride + b0, U + (r * p + k) * D, D, B, nb, acc);
          if (k > 0) {
#pragma omp simd
            for (int64_t b = 0; b < nb; ++b) o[b] *= acc[b];
          }
        }
      }
    }
  });
  return out;
}

// Gradients of projected_rows for grad_out g [R, B]: (grad_x contiguous [slots, d, B], grad_u).
std::vector<torch::Tensor> projected_rows_backward(torch::Tensor g, torch::Tensor x, torch::Tensor slots, torch::Tensor u) {
  const int64_t R = slots.size(0), p = slots.size(1), D = x.size(1), B = x.size(2);
  const Source X = source(x, D, B);
  auto g_c = g.contiguous();
  auto slots_c = slots.contiguous();
  auto u_c = u.contiguous();
  auto grad_x = torch::zeros({x.size(0), D, B}, x.options());
  const int64_t blocks = blocks_of(B);
  auto grad_u = torch::empty({blocks, R, p, D}, u.options());
  const int64_t* S = slots_c.data_ptr<int64_t>();
  const float* U = u_c.data_ptr<float>();
  const float* G = g_c.data_ptr<float>();
  float* GX = grad_x.data_ptr<float>();
  float* GU = grad_u.data_ptr<float>();
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> proj(p * BLOCK), others(BLOCK);
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t b0 = blk * BLOCK, nb = std::min(BLOCK, B - b0);
      for (int64_t r = 0; r < R; ++r) {
        const float* gr = G + r * B + b0;
        for (int64_t k = 0; k < p; ++k) {  // the row's p projections of this block
          project(X.data + S[r * p + k] * X.slot_stride + b0, U + (r * p + k) * D, D, B, nb, proj.data() + k * BLOCK);
        }
        for (int64_t k = 0; k < p; ++k) {  // d out / d projection k = g · the other projections
          float* c = others.data();
#pragma omp simd
          for (int64_t b = 0; b < nb; ++b) c[b] = gr[b];
          for (int64_t k2 = 0; k2 < p; ++k2) {
            if (k2 == k) continue;
            const float* pk2 = proj.data() + k2 * BLOCK;
#pragma omp simd
            for (int64_t b = 0; b < nb; ++b) c[b] *= pk2[b];
          }
          const int64_t slot = S[r * p + k];
          const float* v = X.data + slot * X.slot_stride + b0;
          const float* uk = U + (r * p + k) * D;
          float* gu = GU + ((blk * R + r) * p + k) * D;
          for (int64_t d = 0; d < D; ++d) {
            const float ud = uk[d];
            const float* vd = v + d * B;
            float* gxd = GX + (slot * D + d) * B + b0;
            float acc = 0.f;
#pragma omp simd reduction(+ : acc)
            for (int64_t b = 0; b < nb; ++b) {
              acc += c[b] * vd[b];
              gxd[b] += c[b] * ud;
            }
            gu[d] = acc;
          }
        }
      }
    }
  });
  return {grad_x, grad_u.sum(0)};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("product_rows", &product_rows, "element-wise rows with a kernel per dimension");
  m.def("product_rows_backward", &product_rows_backward, "gradients of product_rows");
  m.def("projected_rows", &projected_rows, "rank-1 outer product rows");
  m.def("projected_rows_backward", &projected_rows_backward, "gradients of projected_rows");
}
