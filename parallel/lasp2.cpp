// LASP-2 state exchange: one AllGather of a (B, H, d, d) state per direction,
// then the decayed prefix (forward) or suffix (backward) sum over chunks (the
// merge ops of runtime/ops.h).
#include "parallel/lasp2.h"

#include "runtime/error.h"
#include "runtime/ops.h"

namespace lintrain {

namespace {

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

Lasp2StateExchange::Lasp2StateExchange(const Context& ctx, Communicator* comm, int B, int H, int d,
                                       int C, std::vector<float> decay)
    : ctx_(ctx), comm_(comm), B_(B), H_(H), d_(d), C_(C), decay_(std::move(decay)) {
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

size_t Lasp2StateExchange::merge_scratch_bytes() const {
  return lasp2_merge_states_scratch_bytes(ctx_.device, B_, H_, d_);
}

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
  lasp2_prefix_states(ctx_, P, recv_.data(), size_, rank_, B_, H_, d_, C_, decay_.data());
}

void Lasp2StateExchange::end_backward(float* G) {
  end(Phase::backward, "end_backward");
  lasp2_suffix_states(ctx_, G, recv_.data(), size_, rank_, B_, H_, d_, C_, decay_.data());
}

}  // namespace lintrain
