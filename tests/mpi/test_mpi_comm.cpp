// mpi-ranks: 2 4
// MpiCommunicator under mpirun: the conformance suite of every communicator
// (tests/comm_conformance.h: outputs checked exactly against values each rank
// generates; f32, and bf16/f64 through the user-defined bf16 MPI_Op and
// MPI_DOUBLE), the staged communicator over MPI, the DP x SP grid on real
// sub-communicators, and MpiRuntime.
#include <gtest/gtest.h>

#include "../comm_conformance.h"
#include "mpi_test.h"
#include "parallel/process_grid.h"
#include "parallel/staged_communicator.h"
#include "runtime/dtype.h"
#include "runtime/error.h"

using namespace lintrain;

TEST(MpiRuntime, DescribesTheJob) {
  MpiRuntime& mpi = mpi_runtime();
  int rank = -1, size = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  EXPECT_EQ(mpi.rank(), rank);
  EXPECT_EQ(mpi.size(), size);
  EXPECT_GE(mpi.thread_level(), MPI_THREAD_MULTIPLE);
  // All ranks of these tests run on one host.
  EXPECT_EQ(mpi.local_rank(), rank);
  EXPECT_EQ(mpi.local_size(), size);
  EXPECT_FALSE(mpi.host().empty());
  auto world = mpi.world();
  EXPECT_EQ(world->name(), "mpi");
  EXPECT_EQ(world->rank(), rank);
  EXPECT_EQ(world->size(), size);
  EXPECT_TRUE(MpiRuntime::active());
}

TEST(MpiCommunicator, AllGather) { conformance::check_all_gather(*mpi_runtime().world()); }
TEST(MpiCommunicator, AllReduce) { conformance::check_all_reduce(*mpi_runtime().world()); }
TEST(MpiCommunicator, ReduceScatter) { conformance::check_reduce_scatter(*mpi_runtime().world()); }
TEST(MpiCommunicator, AllReduceF64) { conformance::check_all_reduce_f64(*mpi_runtime().world()); }
TEST(MpiCommunicator, Broadcast) { conformance::check_broadcast(*mpi_runtime().world()); }
TEST(MpiCommunicator, RequestsInFlight) { conformance::check_requests_in_flight(*mpi_runtime().world()); }
TEST(MpiCommunicator, Stats) { conformance::check_stats(*mpi_runtime().world()); }
TEST(MpiCommunicator, Split) { conformance::check_split(*mpi_runtime().world()); }
TEST(MpiCommunicator, IdenticalBitsOnEveryRank) {
  conformance::check_all_reduce_identical_on_every_rank(*mpi_runtime().world());
}

TEST(MpiCommunicator, AllGatherDTypes) { conformance::check_all_gather_dtypes(*mpi_runtime().world()); }
TEST(MpiCommunicator, AllReduceDTypes) { conformance::check_all_reduce_dtypes(*mpi_runtime().world()); }
TEST(MpiCommunicator, ReduceScatterDTypes) { conformance::check_reduce_scatter_dtypes(*mpi_runtime().world()); }
TEST(MpiCommunicator, RefusesSumsOfOtherDTypes) { conformance::check_dtype_refusal(*mpi_runtime().world()); }
TEST(MpiCommunicator, StatsDTypes) { conformance::check_stats_dtypes(*mpi_runtime().world()); }

TEST(MpiCommunicator, Bf16SumOfTwoRanksRoundsToNearestEven) {
  // One combine step whatever the algorithm: 256 + 1 is a tie between bf16's
  // 256 and 258 and rounds to even; 256 + 3 = 259 rounds up to 260. Ranks
  // past the second add zero.
  auto world = mpi_runtime().world();
  const int me = world->rank();
  uint16_t v[2] = {f32_to_bf16(me == 0 ? 256.0f : me == 1 ? 1.0f : 0.0f),
                   f32_to_bf16(me == 0 ? 256.0f : me == 1 ? 3.0f : 0.0f)};
  world->all_reduce(v, 2, DType::BF16);
  EXPECT_EQ(bf16_to_f32(v[0]), 256.0f);
  EXPECT_EQ(bf16_to_f32(v[1]), 260.0f);
}

// Device buffers over MPI through host staging (Device::CPU here: the copies
// are memcpy), as two ranks sharing one GPU run it.
TEST(StagedCommunicator, ConformanceOverMpi) {
  auto staged = make_staged_communicator(mpi_runtime().world(), Device::CPU);
  EXPECT_EQ(staged->name(), "mpi+staged");
  conformance::run_all(*staged);
}

TEST(MpiCommunicator, ErrorsNameTheCallRankAndHost) {
  // An invalid root reaches MPI only through our own check; a negative count
  // reaches MPI_Bcast's argument check, which must come back as an Error.
  auto world = mpi_runtime().world();
  char c = 0;
  EXPECT_THROW(world->broadcast(&c, 1, world->size()), Error);
  try {
    LT_MPI_CHECK(MPI_Bcast(&c, -1, MPI_BYTE, 0, static_cast<MpiCommunicator&>(*world).handle()));
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("[mpi] MPI_Bcast(&c, -1, MPI_BYTE"), std::string::npos) << what;
    EXPECT_NE(what.find("test_mpi_comm.cpp:"), std::string::npos) << what;
    EXPECT_NE(what.find(" on rank " + std::to_string(world->rank()) + " (host "), std::string::npos) << what;
  }
}

TEST(ProcessGrid, UnderMpi) {
  MpiRuntime& mpi = mpi_runtime();
  auto world = mpi.world();
  const int W = world->size();
  for (int sp : {1, 2, 4}) {
    if (W % sp != 0) continue;
    const int dp = W / sp;
    ProcessGrid g(ParallelConfig{sp, dp}, *world);
    const int r = world->rank();
    EXPECT_EQ(g.sp_rank(), r % sp);
    EXPECT_EQ(g.dp_rank(), r / sp);
    EXPECT_EQ(g.sp().name(), "mpi");
    float me = static_cast<float>(r);
    std::vector<float> sp_members(static_cast<size_t>(sp)), dp_members(static_cast<size_t>(dp));
    g.sp().all_gather(&me, sp_members.data(), 1);
    g.dp().all_gather(&me, dp_members.data(), 1);
    for (int i = 0; i < sp; ++i) EXPECT_EQ(sp_members[static_cast<size_t>(i)], g.dp_rank() * sp + i) << "SP " << sp;
    for (int i = 0; i < dp; ++i) EXPECT_EQ(dp_members[static_cast<size_t>(i)], i * sp + g.sp_rank()) << "SP " << sp;
    // Traffic on a sub-communicator is counted there, not on the world.
    world->reset_stats();
    g.sp().reset_stats();
    g.sp().all_reduce(&me, 1);
    EXPECT_EQ(g.sp().stats().all_reduce_bytes, sizeof(float));
    EXPECT_EQ(world->stats().all_reduce_bytes, 0u);
  }
  EXPECT_THROW(ProcessGrid(ParallelConfig{W + 1, 1}, *world), ConfigError);
}
