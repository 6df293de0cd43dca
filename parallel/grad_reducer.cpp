// GradReducer: bucket layout, per-step readiness, and the communication
// thread (see grad_reducer.h for why a thread).
#include "parallel/grad_reducer.h"

#include <algorithm>

#include "runtime/error.h"

namespace lintrain {

GradReducer::GradReducer(const ParamTable& table, FlatBuffer& grads, Communicator& comm, size_t bucket_bytes)
    : table_(table), data_(grads.data()), comm_(comm) {
  LT_CHECK(bucket_bytes >= 1, "[grad reducer] bucket_bytes must be at least 1");
  LT_CHECK(grads.numel() == table.buffer_numel(), "[grad reducer] the gradient buffer has ", grads.numel(),
           " elements but the parameter table lays out ", table.buffer_numel());
  const int n = static_cast<int>(table.size());
  bucket_of_view_.assign(static_cast<size_t>(n), -1);
  auto close = [&](int first, int last, int64_t end) {
    const int64_t offset = table.view(first).offset;  // 0 for the bucket holding view 0
    for (int v = first; v <= last; ++v) bucket_of_view_[static_cast<size_t>(v)] = static_cast<int>(buckets_.size());
    buckets_.push_back({first, last, offset, end - offset});
  };
  // Walk from the last tensor; bucket [v + 1, last] closes when adding tensor
  // v would take its slice [offset(v), end) past bucket_bytes.
  int64_t end = table.buffer_numel();
  int last = n - 1;
  for (int v = n - 2; v >= 0; --v) {
    const auto bytes = static_cast<size_t>(end - table.view(v).offset) * sizeof(float);
    if (bytes > bucket_bytes) {
      close(v + 1, last, end);
      end = table.view(v + 1).offset;
      last = v;
    }
  }
  if (n > 0) close(0, last, end);

  marked_.assign(static_cast<size_t>(n), 0);
  for (const GradBucket& b : buckets_) unmarked_.push_back(b.last_view - b.first_view + 1);
  thread_ = std::thread([this] { run_communication_thread(); });
}

GradReducer::~GradReducer() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void GradReducer::mark_ready(int view_index) {
  LT_CHECK(view_index >= 0 && static_cast<size_t>(view_index) < marked_.size(), "[grad reducer] view index ",
           view_index, " is out of range: the table has ", marked_.size(), " tensors");
  std::lock_guard<std::mutex> lk(mu_);
  if (error_) std::rethrow_exception(error_);
  char& m = marked_[static_cast<size_t>(view_index)];
  LT_CHECK(!m, "[grad reducer] ", table_.view(view_index).name,
           " was marked ready twice in one step; call finish() between steps");
  m = 1;
  if (--unmarked_[static_cast<size_t>(bucket_of(view_index))] == 0) cv_.notify_all();
}

void GradReducer::finish() {
  std::unique_lock<std::mutex> lk(mu_);
  for (size_t v = 0; v < marked_.size(); ++v) {
    if (!marked_[v]) {
      marked_[v] = 1;
      --unmarked_[static_cast<size_t>(bucket_of_view_[v])];
    }
  }
  cv_.notify_all();
  cv_.wait(lk, [&] { return next_bucket_ == buckets_.size() || error_; });
  if (error_) std::rethrow_exception(error_);
  std::fill(marked_.begin(), marked_.end(), 0);
  for (size_t b = 0; b < buckets_.size(); ++b) unmarked_[b] = buckets_[b].last_view - buckets_[b].first_view + 1;
  next_bucket_ = 0;
}

size_t GradReducer::reduced_buckets() const {
  std::lock_guard<std::mutex> lk(mu_);
  return next_bucket_;
}

void GradReducer::run_communication_thread() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stop_ || (!error_ && next_bucket_ < buckets_.size() && unmarked_[next_bucket_] == 0); });
    if (stop_) return;
    const GradBucket b = buckets_[next_bucket_];
    lk.unlock();
    std::exception_ptr err;
    try {
      comm_.all_reduce(data_ + b.offset, static_cast<size_t>(b.numel));
    } catch (...) {
      err = std::current_exception();
    }
    lk.lock();
    if (err)
      error_ = err;
    else
      ++next_bucket_;
    cv_.notify_all();
  }
}

}  // namespace lintrain
