// LASP-2 state exchange: one AllGather of a (B, H, d, d) state per direction,
// then the decayed prefix (forward) or suffix (backward) sum over chunks.
#include "parallel/lasp2.h"

#include <cmath>

#include "runtime/error.h"

namespace lintrain {

namespace {

// out[b,h] = sum over u in [u0, u1) of lambda_h^(C * n(u)) gathered[u][b,h],
// the terms in increasing u, summed in double.
template <typename Exponent>
void merge_states(float* out, const float* gathered, int u0, int u1, int B, int H, int d, int C,
                  const float* decay, Exponent n) {
  const size_t dd = static_cast<size_t>(d) * d, per_rank = static_cast<size_t>(B) * H * dd;
#pragma omp parallel for schedule(static)
  for (int bh = 0; bh < B * H; ++bh) {
    const int h = bh % H;
    const double log_lambda = std::log(static_cast<double>(decay[h]));
    std::vector<double> acc(dd, 0.0);
    for (int u = u0; u < u1; ++u) {
      const double w = std::exp(static_cast<double>(C) * n(u) * log_lambda);
      if (w == 0.0) continue;  // underflow: the term is exactly zero
      const float* src = gathered + u * per_rank + static_cast<size_t>(bh) * dd;
      for (size_t i = 0; i < dd; ++i) acc[i] += w * src[i];
    }
    float* dst = out + static_cast<size_t>(bh) * dd;
    for (size_t i = 0; i < dd; ++i) dst[i] = static_cast<float>(acc[i]);
  }
}

void check_args(const char* op, int W, int j, int B, int H, int d, int C, const float* decay) {
  LT_CHECK(W >= 1 && j >= 0 && j < W, "[", op, "] rank j=", j, " outside [0, W=", W, ")");
  LT_CHECK(B >= 0 && H >= 1 && d >= 1 && C >= 0, "[", op, "] bad shape B=", B, " H=", H, " d=", d,
           " C=", C);
  LT_CHECK(decay != nullptr, "[", op, "] decay is null");
  for (int h = 0; h < H; ++h)
    LT_CHECK(decay[h] > 0.0f && decay[h] <= 1.0f, "[", op, "] decay[", h, "]=", decay[h],
             " must be in (0, 1]");
}

}  // namespace

void lasp2_prefix_states(float* out, const float* gathered, int W, int j, int B, int H, int d,
                         int C, const float* decay) {
  check_args("lasp2_prefix_states", W, j, B, H, d, C, decay);
  merge_states(out, gathered, 0, j, B, H, d, C, decay, [j](int u) { return j - 1 - u; });
}

void lasp2_suffix_states(float* out, const float* gathered, int W, int j, int B, int H, int d,
                         int C, const float* decay) {
  check_args("lasp2_suffix_states", W, j, B, H, d, C, decay);
  merge_states(out, gathered, j + 1, W, B, H, d, C, decay, [j](int u) { return u - 1 - j; });
}

Lasp2StateExchange::Lasp2StateExchange(Communicator* comm, int B, int H, int d, int C,
                                       std::vector<float> decay)
    : comm_(comm), B_(B), H_(H), d_(d), C_(C), decay_(std::move(decay)) {
  LT_CHECK(comm != nullptr, "[Lasp2StateExchange] the SP communicator is null");
  rank_ = comm->rank();
  size_ = comm->size();
  LT_CHECK(decay_.size() == static_cast<size_t>(H), "[Lasp2StateExchange] ", decay_.size(),
           " decays for H=", H, " heads");
  check_args("Lasp2StateExchange", size_, rank_, B, H, d, C, decay_.data());
  send_.resize(static_cast<size_t>(B) * H * d * d);
  recv_.resize(send_.size() * size_);
}

Lasp2StateExchange::~Lasp2StateExchange() = default;  // pending_'s destructor waits

void Lasp2StateExchange::begin(Phase phase, const char* who) {
  LT_CHECK(phase_ == Phase::idle, "[Lasp2StateExchange::", who,
           "] the previous exchange was not finished (call end_forward/end_backward first)");
  pending_ = comm_->iall_gather(send_.data(), recv_.data(), send_.size());
  phase_ = phase;
}

void Lasp2StateExchange::end(Phase phase, const char* who) {
  LT_CHECK(phase_ == phase && pending_, "[Lasp2StateExchange::", who,
           "] no matching begin_", phase == Phase::forward ? "forward" : "backward", "()");
  pending_->wait();
  pending_.reset();
  phase_ = Phase::idle;
}

void Lasp2StateExchange::begin_forward() { begin(Phase::forward, "begin_forward"); }
void Lasp2StateExchange::begin_backward() { begin(Phase::backward, "begin_backward"); }

void Lasp2StateExchange::end_forward(float* P) {
  end(Phase::forward, "end_forward");
  lasp2_prefix_states(P, recv_.data(), size_, rank_, B_, H_, d_, C_, decay_.data());
}

void Lasp2StateExchange::end_backward(float* G) {
  end(Phase::backward, "end_backward");
  lasp2_suffix_states(G, recv_.data(), size_, rank_, B_, H_, d_, C_, decay_.data());
}

}  // namespace lintrain
