// Communicators inside one process: the conformance suite on Self and on
// ThreadCommunicator groups of 1-4 ranks, and on the staged communicator over
// both (Device::CPU), the thread communicator's failure handling (no hangs),
// and the DP x SP process grid. The same suite runs
// under mpirun in tests/mpi/test_mpi_comm.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>
#include <vector>

#include "../comm_conformance.h"
#include "parallel/nccl/nccl_communicator.h"
#include "parallel/process_grid.h"
#include "parallel/staged_communicator.h"
#include "parallel/thread_communicator.h"
#include "runtime/dtype.h"
#include "runtime/error.h"

using namespace lintrain;

TEST(SelfCommunicator, Conformance) {
  auto c = make_self_communicator();
  EXPECT_EQ(c->size(), 1);
  EXPECT_EQ(c->name(), "self");
  conformance::run_all(*c);
  EXPECT_EQ(c->split(-1, 0), nullptr);
}

class ThreadRanks : public testing::TestWithParam<int> {};

TEST_P(ThreadRanks, AllGather) { run_ranks(GetParam(), conformance::check_all_gather); }
TEST_P(ThreadRanks, AllReduce) { run_ranks(GetParam(), conformance::check_all_reduce); }
TEST_P(ThreadRanks, ReduceScatter) { run_ranks(GetParam(), conformance::check_reduce_scatter); }
TEST_P(ThreadRanks, AllReduceF64) { run_ranks(GetParam(), conformance::check_all_reduce_f64); }
TEST_P(ThreadRanks, Broadcast) { run_ranks(GetParam(), conformance::check_broadcast); }
TEST_P(ThreadRanks, RequestsInFlight) { run_ranks(GetParam(), conformance::check_requests_in_flight); }
TEST_P(ThreadRanks, Stats) { run_ranks(GetParam(), conformance::check_stats); }
TEST_P(ThreadRanks, Split) { run_ranks(GetParam(), conformance::check_split); }
TEST_P(ThreadRanks, IdenticalBitsOnEveryRank) {
  run_ranks(GetParam(), conformance::check_all_reduce_identical_on_every_rank);
}

TEST_P(ThreadRanks, AllGatherDTypes) { run_ranks(GetParam(), conformance::check_all_gather_dtypes); }
TEST_P(ThreadRanks, AllReduceDTypes) { run_ranks(GetParam(), conformance::check_all_reduce_dtypes); }
TEST_P(ThreadRanks, ReduceScatterDTypes) { run_ranks(GetParam(), conformance::check_reduce_scatter_dtypes); }
TEST_P(ThreadRanks, RefusesSumsOfOtherDTypes) { run_ranks(GetParam(), conformance::check_dtype_refusal); }
TEST_P(ThreadRanks, StatsDTypes) { run_ranks(GetParam(), conformance::check_stats_dtypes); }

INSTANTIATE_TEST_SUITE_P(W, ThreadRanks, testing::Values(1, 2, 3, 4));

// The staged communicator over a thread group: device buffers (here on the
// CPU device, so the copies are memcpy) through host staging buffers. The
// thread group is the split of run_ranks' group into one group of everyone
// (a communicator the staged one can own).
void run_staged(int world_size, void (*check)(Communicator&)) {
  run_ranks(world_size, [check](Communicator& c) {
    auto staged = make_staged_communicator(c.split(0, c.rank()), Device::CPU);
    EXPECT_EQ(staged->name(), "thread+staged");
    EXPECT_EQ(staged->rank(), c.rank());
    check(*staged);
  });
}

class StagedThreadRanks : public testing::TestWithParam<int> {};

TEST_P(StagedThreadRanks, Conformance) { run_staged(GetParam(), conformance::run_all); }

INSTANTIATE_TEST_SUITE_P(W, StagedThreadRanks, testing::Values(1, 2, 3));

TEST(StagedCommunicator, ConformanceOverSelf) {
  auto c = make_staged_communicator(make_self_communicator(), Device::CPU);
  EXPECT_EQ(c->name(), "self+staged");
  EXPECT_EQ(c->size(), 1);
  EXPECT_EQ(c->device(), Device::CPU);
  conformance::run_all(*c);
  EXPECT_EQ(c->split(-1, 0), nullptr);
}

TEST(StagedCommunicator, ReportsItsDeviceAndRefusesNoHost) {
  EXPECT_EQ(make_staged_communicator(make_self_communicator(), Device::CUDA)->device(), Device::CUDA);
  EXPECT_THROW(make_staged_communicator(nullptr, Device::CPU), Error);
}

TEST(StagedCommunicator, CountsItsOwnTrafficAndTheHostsToo) {
  run_ranks(2, [](Communicator& c) {
    auto host = c.split(0, c.rank());
    Communicator* inner = host.get();
    auto staged = make_staged_communicator(std::move(host), Device::CPU);
    std::vector<uint16_t> x(8, 0);
    staged->all_reduce(x.data(), x.size(), DType::BF16);
    EXPECT_EQ(staged->stats().all_reduce_bytes, 16u);
    EXPECT_EQ(inner->stats().all_reduce_bytes, 16u);
  });
}

TEST(StagedCommunicator, ReusesStagingBuffersOfOtherSizes) {
  // Collectives of changing sizes in flight together, waited in changing
  // orders: each must get a buffer of its own of at least its size.
  run_ranks(2, [](Communicator& c) {
    auto staged = make_staged_communicator(c.split(0, c.rank()), Device::CPU);
    for (size_t round = 0; round < 6; ++round) {
      const size_t big = 1000 * (round % 3 + 1), small = 3 + round;
      std::vector<float> sum(big, 1.0f + static_cast<float>(c.rank()));
      std::vector<double> mine(small, static_cast<double>(c.rank())), all(2 * small, -1.0);
      Request a = staged->iall_reduce(sum.data(), big);
      Request b = staged->iall_gather(mine.data(), all.data(), small, DType::F64);
      if (round % 2) {
        a->wait();
        b->wait();
      } else {
        b->wait();
        a->wait();
      }
      EXPECT_EQ(std::count(sum.begin(), sum.end(), 3.0f), static_cast<std::ptrdiff_t>(big)) << "round " << round;
      for (size_t i = 0; i < 2 * small; ++i) EXPECT_EQ(all[i], i < small ? 0.0 : 1.0) << "round " << round;
    }
  });
}

TEST(StagedCommunicator, AbandonedRequestDuringUnwindingDoesNotHang) {
  EXPECT_THROW(run_ranks(2,
                         [](Communicator& c) {
                           auto staged = make_staged_communicator(c.split(0, c.rank()), Device::CPU);
                           float v = 1;
                           Request r = staged->iall_reduce(&v, 1);
                           if (c.rank() == 0) throw Error("rank 0 fails with a staged request in flight");
                           r->wait();
                           staged->barrier();
                         }),
               Error);
}

TEST(StagedCommunicator, SplitsIntoStagedGroups) {
  run_ranks(4, [](Communicator& c) {
    auto staged = make_staged_communicator(c.split(0, c.rank()), Device::CPU);
    auto pair = staged->split(c.rank() / 2, c.rank());
    ASSERT_NE(pair, nullptr);
    EXPECT_EQ(pair->name(), "thread+staged");
    EXPECT_EQ(pair->device(), Device::CPU);
    double v = c.rank();
    pair->all_reduce(&v, 1, DType::F64);
    EXPECT_EQ(v, c.rank() < 2 ? 1.0 : 5.0);
  });
}

TEST(ThreadCommunicator, Bf16SumsRoundAfterEveryStepInRankOrder) {
  // 256 + 1 = 257 is a tie between bf16's 256 and 258 and rounds to even
  // (256), twice: ((256 + 1) + 1) = 256. Summing in f32 and rounding once
  // would give 258.
  const float x[3] = {256.0f, 1.0f, 1.0f};
  run_ranks(3, [&](Communicator& c) {
    uint16_t v = f32_to_bf16(x[c.rank()]);
    c.all_reduce(&v, 1, DType::BF16);
    EXPECT_EQ(bf16_to_f32(v), 256.0f);
  });
}

TEST(ThreadCommunicator, MismatchedDTypesFailInsteadOfHanging) {
  try {
    run_ranks(2, [](Communicator& c) {
      double v[2] = {};
      if (c.rank() == 0)
        c.all_reduce(v, 2, DType::F32);
      else
        c.all_reduce(v, 2, DType::BF16);
    });
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not match across ranks"), std::string::npos) << e.what();
  }
}

TEST(ThreadCommunicator, SumsInRankOrder) {
  // ((x0 + x1) + x2) in float: 1 + 2^-24 rounds to 1 (ties to even), so adding
  // the tiny terms one at a time to 1 loses both; any other order keeps them.
  const float x[3] = {1.0f, std::ldexp(1.0f, -24), std::ldexp(1.0f, -24)};
  run_ranks(3, [&](Communicator& c) {
    float v = x[c.rank()];
    c.all_reduce(&v, 1);
    EXPECT_EQ(v, 1.0f);
  });
}

TEST(ThreadCommunicator, CompletesWithoutEveryRankWaiting) {
  // Rank 0 waits on its all-gather while rank 1 has only posted it and is
  // blocked on a second collective: MPI semantics, no rendezvous in wait().
  run_ranks(2, [](Communicator& c) {
    float mine = static_cast<float>(c.rank() + 1), both[2] = {};
    Request r = c.iall_gather(&mine, both, 1);
    if (c.rank() == 0) r->wait();
    c.barrier();
    r->wait();
    EXPECT_EQ(both[0], 1.0f);
    EXPECT_EQ(both[1], 2.0f);
  });
}

TEST(ThreadCommunicator, SplitOfSplitAndOutlivingParent) {
  run_ranks(4, [](Communicator& c) {
    std::unique_ptr<Communicator> pair = c.split(c.rank() / 2, c.rank());
    std::unique_ptr<Communicator> single = pair->split(pair->rank(), 0);
    EXPECT_EQ(single->size(), 1);
    float v = static_cast<float>(c.rank());
    pair->all_reduce(&v, 1);
    EXPECT_EQ(v, c.rank() < 2 ? 1.0f : 5.0f);
  });
}

TEST(ThreadCommunicator, RethrowsTheFailingRanksException) {
  // Rank 1 throws before its all-reduce; rank 0, blocked in it, is released.
  try {
    run_ranks(3, [](Communicator& c) {
      if (c.rank() == 1) throw std::invalid_argument("rank 1 broke");
      float v = 1;
      c.all_reduce(&v, 1);
    });
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "rank 1 broke");
  }
}

TEST(ThreadCommunicator, MismatchedCollectivesFailInsteadOfHanging) {
  try {
    run_ranks(2, [](Communicator& c) {
      float v[4] = {};
      if (c.rank() == 0)
        c.all_reduce(v, 4);
      else
        c.all_gather(v, v, 2);
    });
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not match across ranks"), std::string::npos) << e.what();
  }
}

TEST(ThreadCommunicator, RankReturningEarlyFailsTheOthers) {
  // Rank 1 returns without the barrier (as after a failed gtest ASSERT).
  try {
    run_ranks(2, [](Communicator& c) {
      if (c.rank() == 1) return;
      c.barrier();
    });
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("returned without calling it"), std::string::npos) << e.what();
  }
}

TEST(ThreadCommunicator, AbandonedRequestDuringUnwindingDoesNotHang) {
  EXPECT_THROW(run_ranks(2,
                         [](Communicator& c) {
                           float v = 1;
                           Request r = c.iall_reduce(&v, 1);
                           if (c.rank() == 0) throw Error("rank 0 fails with a request in flight");
                           r->wait();
                           c.barrier();
                         }),
               Error);
}

TEST(ThreadCommunicator, RejectsBadArguments) {
  EXPECT_THROW(make_thread_communicators(0), Error);
  EXPECT_THROW(run_ranks(2, [](Communicator& c) { c.broadcast(nullptr, 0, 2); }), Error);
}

// ---- process grid ------------------------------------------------------------------

TEST(ProcessGrid, RejectsLayoutsThatDoNotMatchTheJob) {
  try {
    validate_parallel_layout(ParallelConfig{2, 2}, 3);
    FAIL() << "no exception";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "parallel.sequence (2) x parallel.data (2) = 4 ranks, but the job has 3; start 4 ranks or "
                 "change parallel.*");
  }
  EXPECT_THROW(validate_parallel_layout(ParallelConfig{0, 1}, 1), ConfigError);
  EXPECT_THROW(validate_parallel_layout(ParallelConfig{1, -2}, 1), ConfigError);
  EXPECT_NO_THROW(validate_parallel_layout(ParallelConfig{3, 2}, 6));
  auto self = make_self_communicator();
  EXPECT_THROW(ProcessGrid(ParallelConfig{2, 1}, *self), ConfigError);
}

TEST(ProcessGrid, SequenceGroupsAreConsecutiveRanks) {
  for (auto [sp, dp] : std::vector<std::pair<int, int>>{{1, 1}, {2, 1}, {1, 3}, {2, 2}, {3, 2}, {2, 3}}) {
    run_ranks(sp * dp, [sp = sp, dp = dp](Communicator& world) {
      ProcessGrid g(ParallelConfig{sp, dp}, world);
      const int r = world.rank();
      EXPECT_EQ(g.sp_rank(), r % sp);
      EXPECT_EQ(g.dp_rank(), r / sp);
      EXPECT_EQ(g.sp().rank(), g.sp_rank());
      EXPECT_EQ(g.dp().rank(), g.dp_rank());
      EXPECT_EQ(&g.world(), &world);
      // Who is in my groups, by world rank.
      float me = static_cast<float>(r);
      std::vector<float> sp_members(static_cast<size_t>(sp)), dp_members(static_cast<size_t>(dp));
      g.sp().all_gather(&me, sp_members.data(), 1);
      g.dp().all_gather(&me, dp_members.data(), 1);
      for (int i = 0; i < sp; ++i) EXPECT_EQ(sp_members[static_cast<size_t>(i)], g.dp_rank() * sp + i);
      for (int i = 0; i < dp; ++i) EXPECT_EQ(dp_members[static_cast<size_t>(i)], i * sp + g.sp_rank());
    });
  }
}

TEST(ProcessGrid, Describes) {
  run_ranks(4, [](Communicator& world) {
    ProcessGrid g(ParallelConfig{2, 2}, world);
    if (world.rank() == 3) {
      EXPECT_EQ(g.describe(), "rank 3 of 4 = dp 1 / sp 1 (DP 2 x SP 2)");
    }
  });
}

#if !LINTRAIN_HAS_NCCL
TEST(NcclCommunicator, BuildWithoutNcclSaysSo) {
  auto self = make_self_communicator();
  try {
    make_nccl_communicator(*self, 0);
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("built without NCCL"), std::string::npos) << e.what();
  }
}
#endif
