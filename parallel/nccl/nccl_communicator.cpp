// NcclCommunicator (see nccl_communicator.h). Every CUDA/NCCL handle has an
// RAII owner whose destructor never throws.
#include "parallel/nccl/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <utility>

#include "parallel/mpi_communicator.h"
#include "runtime/cuda/check.h"

#define LT_NCCL_CHECK(call)                                                                          \
  do {                                                                                               \
    const ncclResult_t lt_nccl_rc_ = (call);                                                         \
    if (lt_nccl_rc_ != ncclSuccess)                                                                  \
      ::lintrain::throw_call_error("nccl", #call, __FILE__, __LINE__, ncclGetErrorString(lt_nccl_rc_)); \
  } while (0)

namespace lintrain {

namespace {

struct CudaStream {
  cudaStream_t s = nullptr;
  CudaStream() { LT_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)); }
  ~CudaStream() {
    if (s) (void)cudaStreamDestroy(s);
  }
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
};

struct CudaEvent {
  cudaEvent_t e = nullptr;
  CudaEvent() { LT_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming)); }
  ~CudaEvent() {
    if (e) (void)cudaEventDestroy(e);
  }
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
};

struct NcclComm {
  ncclComm_t c = nullptr;
  explicit NcclComm(ncclComm_t comm) : c(comm) {}
  ~NcclComm() {
    if (c) (void)ncclCommDestroy(c);
  }
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;
};

struct DeviceBytes {
  void* p = nullptr;
  size_t n = 0;
  void reserve(size_t bytes) {
    if (bytes <= n) return;
    if (p) (void)cudaFree(p);
    p = nullptr;
    n = 0;
    LT_CUDA_CHECK(cudaMalloc(&p, bytes));
    n = bytes;
  }
  ~DeviceBytes() {
    if (p) (void)cudaFree(p);
  }
};

// Complete when the event recorded after the collective has fired.
class NcclRequest : public CommRequest {
 public:
  explicit NcclRequest(std::unique_ptr<CudaEvent> done) : done_(std::move(done)) {}
  void wait() override {
    if (!done_) return;
    auto done = std::move(done_);
    LT_CUDA_CHECK(cudaEventSynchronize(done->e));
  }
  ~NcclRequest() override {
    if (done_) (void)cudaEventSynchronize(done_->e);  // never throws
  }

 private:
  std::unique_ptr<CudaEvent> done_;
};

class NcclCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm`. The current device must be `device`.
  NcclCommunicator(ncclComm_t comm, int device, cudaStream_t compute)
      : comm_(comm), device_(device), compute_(compute) {
    LT_NCCL_CHECK(ncclCommUserRank(comm_.c, &rank_));
    LT_NCCL_CHECK(ncclCommCount(comm_.c, &size_));
  }
  ~NcclCommunicator() override {
    (void)cudaSetDevice(device_);
    (void)cudaStreamSynchronize(stream_.s);  // nothing in flight when the handles go
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "nccl"; }
  Device device() const override { return Device::CUDA; }

  void all_reduce_f64(double* buf, size_t count) override {
    const size_t bytes = count * sizeof(double);
    begin();
    scratch_.reserve(bytes);
    LT_CUDA_CHECK(cudaMemcpyAsync(scratch_.p, buf, bytes, cudaMemcpyHostToDevice, stream_.s));
    LT_NCCL_CHECK(ncclAllReduce(scratch_.p, scratch_.p, count, ncclFloat64, ncclSum, comm_.c, stream_.s));
    LT_CUDA_CHECK(cudaMemcpyAsync(buf, scratch_.p, bytes, cudaMemcpyDeviceToHost, stream_.s));
    LT_CUDA_CHECK(cudaStreamSynchronize(stream_.s));
  }

  void broadcast(void* buf, size_t bytes, int root) override {
    LT_CHECK(root >= 0 && root < size_, "[nccl] broadcast root ", root, " is not a rank of a group of ", size_);
    stats_.broadcast_bytes += bytes;
    stats_.broadcast_calls += 1;
    begin();
    scratch_.reserve(bytes);
    if (rank_ == root) LT_CUDA_CHECK(cudaMemcpyAsync(scratch_.p, buf, bytes, cudaMemcpyHostToDevice, stream_.s));
    LT_NCCL_CHECK(ncclBroadcast(scratch_.p, scratch_.p, bytes, ncclUint8, root, comm_.c, stream_.s));
    if (rank_ != root) LT_CUDA_CHECK(cudaMemcpyAsync(buf, scratch_.p, bytes, cudaMemcpyDeviceToHost, stream_.s));
    LT_CUDA_CHECK(cudaStreamSynchronize(stream_.s));
  }

  void barrier() override {
    begin();
    scratch_.reserve(sizeof(float));
    LT_NCCL_CHECK(ncclAllReduce(scratch_.p, scratch_.p, 1, ncclFloat32, ncclSum, comm_.c, stream_.s));
    LT_CUDA_CHECK(cudaStreamSynchronize(stream_.s));
  }

  std::unique_ptr<Communicator> split(int color, int key) override {
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 18, 0)
    LT_CUDA_CHECK(cudaSetDevice(device_));
    ncclComm_t sub = nullptr;
    LT_NCCL_CHECK(ncclCommSplit(comm_.c, color < 0 ? NCCL_SPLIT_NOCOLOR : color, key, &sub, nullptr));
    if (!sub) return nullptr;
    return std::make_unique<NcclCommunicator>(sub, device_, compute_);
#else
    (void)color;
    (void)key;
    throw Error("[nccl] split needs NCCL 2.18 or newer (ncclCommSplit)");
#endif
  }

 protected:
  Request start_all_gather(const void* send, void* recv, size_t count, DType dtype) override {
    const Elements e = gathered_elements(count, dtype);
    begin();
    LT_NCCL_CHECK(ncclAllGather(send, recv, e.count, e.type, comm_.c, stream_.s));
    return end();
  }

  Request start_all_reduce(void* buf, size_t count, DType dtype) override {
    begin();
    LT_NCCL_CHECK(ncclAllReduce(buf, buf, count, summed_type(dtype), ncclSum, comm_.c, stream_.s));
    return end();
  }

  Request start_reduce_scatter(const void* send, void* recv, size_t count, DType dtype) override {
    const ncclDataType_t type = summed_type(dtype);
    begin();
    if (send == recv) {
      // NCCL's in-place form leaves the result at send + rank * count; the
      // interface's puts it at the front.
      const size_t bytes = count * dtype_size(dtype);
      auto* mine = static_cast<unsigned char*>(recv) + static_cast<size_t>(rank_) * bytes;
      LT_NCCL_CHECK(ncclReduceScatter(send, mine, count, type, ncclSum, comm_.c, stream_.s));
      if (mine != recv && bytes)
        LT_CUDA_CHECK(cudaMemcpyAsync(recv, mine, bytes, cudaMemcpyDeviceToDevice, stream_.s));
    } else {
      LT_NCCL_CHECK(ncclReduceScatter(send, recv, count, type, ncclSum, comm_.c, stream_.s));
    }
    return end();
  }

 private:
  // The NCCL element type of a sum (Communicator has refused the others).
  static ncclDataType_t summed_type(DType t) {
    switch (t) {
      case DType::F32: return ncclFloat32;
      case DType::F64: return ncclFloat64;
      case DType::BF16: return ncclBfloat16;
      default: break;
    }
    throw Error(str_cat("[nccl] no NCCL sum for dtype ", dtype_name(t)));
  }

  // An all_gather moves bytes: f32 stays ncclFloat32 (as before dtypes),
  // anything else goes as count * size bytes.
  struct Elements {
    size_t count;
    ncclDataType_t type;
  };
  static Elements gathered_elements(size_t count, DType t) {
    if (t == DType::F32) return {count, ncclFloat32};
    return {count * dtype_size(t), ncclUint8};
  }

  // Collectives read data the compute stream produced: order after it.
  void begin() {
    LT_CUDA_CHECK(cudaSetDevice(device_));
    LT_CUDA_CHECK(cudaEventRecord(inputs_ready_.e, compute_));
    LT_CUDA_CHECK(cudaStreamWaitEvent(stream_.s, inputs_ready_.e, 0));
  }
  Request end() {
    auto done = std::make_unique<CudaEvent>();
    LT_CUDA_CHECK(cudaEventRecord(done->e, stream_.s));
    return std::make_unique<NcclRequest>(std::move(done));
  }

  NcclComm comm_;  // first: owned even if a later member's constructor throws
  int device_;
  CudaStream stream_;
  CudaEvent inputs_ready_;
  DeviceBytes scratch_;
  cudaStream_t compute_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int device, void* compute_stream) {
  LT_CUDA_CHECK(cudaSetDevice(device));
  ncclUniqueId id{};
  if (bootstrap.rank() == 0) LT_NCCL_CHECK(ncclGetUniqueId(&id));
  bootstrap.broadcast(&id, sizeof(id), 0);
  ncclComm_t comm = nullptr;
  LT_NCCL_CHECK(ncclCommInitRank(&comm, bootstrap.size(), id, bootstrap.rank()));
  return std::make_unique<NcclCommunicator>(comm, device, static_cast<cudaStream_t>(compute_stream));
}

}  // namespace lintrain
