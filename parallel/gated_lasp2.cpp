// Gated LASP-2 state exchange: one AllGather of the chunk maps forward, one of
// the prefix-state gradients backward, then the folds of runtime/ops_gla.h.
#include "parallel/gated_lasp2.h"

#include "runtime/buffer_plan.h"
#include "runtime/error.h"
#include "runtime/ops_gla.h"

namespace lintrain {

GatedLasp2Exchange::GatedLasp2Exchange(const Context& ctx, Communicator* comm, int B, int H, int d)
    : ctx_(ctx), comm_(comm), B_(B), H_(H), d_(d) {
  LT_CHECK(comm != nullptr, "[GatedLasp2Exchange] the SP communicator is null");
  LT_CHECK(B >= 0 && H >= 1 && d >= 1, "[GatedLasp2Exchange] bad shape B=", B, " H=", H, " d=", d);
  rank_ = comm->rank();
  size_ = comm->size();
  LT_CHECK(comm->device() == ctx.device, "[GatedLasp2Exchange] the SP communicator (", comm->name(), ") takes ",
           device_name(comm->device()), " buffers but the layer runs on ", device_name(ctx.device));
  state_floats_ = static_cast<size_t>(B) * H * d * d;
  map_floats_ = state_floats_ + static_cast<size_t>(B) * H * d;
  BufferPlan plan;
  plan.add(&send_map_, map_floats_);
  plan.add(&recv_map_, map_floats_ * size_);
  plan.add(&send_grad_, state_floats_);
  plan.add(&recv_grad_, state_floats_ * size_);
  buffers_ = plan.allocate(ctx.device);
}

GatedLasp2Exchange::~GatedLasp2Exchange() = default;  // pending_'s destructor waits

void GatedLasp2Exchange::begin(Phase phase, const char* who) {
  LT_CHECK(phase_ == Phase::idle, "[GatedLasp2Exchange::", who,
           "] the previous exchange was not finished (call end_forward/end_backward first)");
  if (phase == Phase::forward) pending_ = comm_->iall_gather(send_map_, recv_map_, map_floats_);
  else pending_ = comm_->iall_gather(send_grad_, recv_grad_, state_floats_);
  phase_ = phase;
}

void GatedLasp2Exchange::end(Phase phase, const char* who) {
  LT_CHECK(phase_ == phase && pending_, "[GatedLasp2Exchange::", who, "] no matching begin_",
           phase == Phase::forward ? "forward" : "backward", "()");
  pending_->wait();
  pending_.reset();
  phase_ = Phase::idle;
}

void GatedLasp2Exchange::begin_forward() {
  have_maps_ = false;
  begin(Phase::forward, "begin_forward");
}

void GatedLasp2Exchange::begin_backward() {
  LT_CHECK(have_maps_, "[GatedLasp2Exchange::begin_backward] no forward exchange this step: the backward fold "
           "needs the gathered chunk gates");
  begin(Phase::backward, "begin_backward");
}

void GatedLasp2Exchange::end_forward(float* P, float* S_out, const float* state_in, float* state_final) {
  end(Phase::forward, "end_forward");
  have_maps_ = true;
  gla_prefix_fold(ctx_, P, S_out, recv_map_, state_in, size_, rank_, B_, H_, d_);
  if (state_final) gla_prefix_fold(ctx_, nullptr, state_final, recv_map_, state_in, size_, size_ - 1, B_, H_, d_);
}

void GatedLasp2Exchange::end_backward(float* G, const float* dstate_final, float* dstate_in) {
  end(Phase::backward, "end_backward");
  gla_suffix_fold(ctx_, G, recv_grad_, recv_map_, dstate_final, size_, rank_, B_, H_, d_);
  if (dstate_in) gla_suffix_fold(ctx_, dstate_in, recv_grad_, recv_map_, dstate_final, size_, -1, B_, H_, d_);
}

}  // namespace lintrain
