// LASP-2 state exchange: one AllGather of a (B, H, d, d) state per direction,
// then the decayed prefix (forward) or suffix (backward) sum over chunks (the
// merge ops of runtime/ops.h).
#include "parallel/lasp2.h"

#include <algorithm>

#include "runtime/buffer_plan.h"
#include "runtime/device.h"
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
  LT_CHECK(comm->device() == ctx.device, "[Lasp2StateExchange] the SP communicator (", comm->name(), ") takes ",
           device_name(comm->device()), " buffers but the layer runs on ", device_name(ctx.device),
           ": LASP-2 needs a communicator of the layer's device (NCCL for cuda)");
  state_floats_ = static_cast<size_t>(B) * H * d * d;
  BufferPlan plan;
  plan.add(&send_, state_floats_);
  plan.add(&recv_, state_floats_ * size_);
  buffers_ = plan.allocate(ctx.device);
  decay_dev_ = Tensor::zeros({H}, DType::F32, ctx.device);
  copy_from_host(ctx.device, decay_dev_.raw(), decay_.data(), decay_.size() * sizeof(float));
}

Lasp2StateExchange::~Lasp2StateExchange() = default;  // pending_'s destructor waits

size_t Lasp2StateExchange::merge_scratch_bytes() const {
  return lasp2_merge_states_scratch_bytes(ctx_.device, B_, H_, d_);
}

void Lasp2StateExchange::begin(Phase phase, const char* who) {
  LT_CHECK(phase_ == Phase::idle, "[Lasp2StateExchange::", who,
           "] the previous exchange was not finished (call end_forward/end_backward first)");
  pending_ = comm_->iall_gather(send_, recv_, state_floats_);
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
  lasp2_prefix_states(ctx_, P, recv_, size_, rank_, B_, H_, d_, C_, decay_dev_.data<float>());
}

void Lasp2StateExchange::end_backward(float* G) {
  end(Phase::backward, "end_backward");
  lasp2_suffix_states(ctx_, G, recv_, size_, rank_, B_, H_, d_, C_, decay_dev_.data<float>());
}

}  // namespace lintrain
