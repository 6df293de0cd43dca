// The collective watchdog's bookkeeping (parallel/watchdog.h), without MPI:
// wait slots, timeout and allowances, the probe answer and the abort message.
// The MPI half (probing, MPI_Abort) is tested end to end by
// tests/e2e/test_stalled_rank.sh.
#include "parallel/watchdog.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace lintrain::watchdog {
namespace {

// Every test starts with the watchdog off and nothing in flight.
class Watchdog : public ::testing::Test {
 protected:
  void SetUp() override {
    set_timeout(0);
    set_step(0);
    ASSERT_TRUE(in_flight().empty());
  }
  void TearDown() override {
    set_timeout(0);
    set_step(0);
  }
};

TEST_F(Watchdog, FormatRanksCompressesRuns) {
  EXPECT_EQ(format_ranks({}), "");
  EXPECT_EQ(format_ranks({3}), "3");
  EXPECT_EQ(format_ranks({0, 1}), "0, 1");
  EXPECT_EQ(format_ranks({0, 1, 2, 3, 5, 7, 8, 9}), "0-3, 5, 7-9");
}

TEST_F(Watchdog, GroupsAreRegisteredOnce) {
  const int a = register_group("the world group (4 ranks)");
  const int b = register_group("a group of 2 ranks (world ranks 0, 1)");
  EXPECT_NE(a, b);
  EXPECT_EQ(register_group("the world group (4 ranks)"), a);
  EXPECT_EQ(group_description(a), "the world group (4 ranks)");
  EXPECT_EQ(group_description(-1), "a group");
}

TEST_F(Watchdog, ScopesAreInFlightWhileAlive) {
  const int g = register_group("the world group (2 ranks)");
  {
    const WaitScope outer("all_reduce", g);
    {
      const WaitScope inner("barrier", g);
      const std::vector<Wait> w = in_flight();
      ASSERT_EQ(w.size(), 2u);
      std::vector<std::string> ops = {w[0].op, w[1].op};
      EXPECT_NE(std::find(ops.begin(), ops.end(), "all_reduce"), ops.end());
      EXPECT_NE(std::find(ops.begin(), ops.end(), "barrier"), ops.end());
    }
    ASSERT_EQ(in_flight().size(), 1u);
    EXPECT_STREQ(in_flight()[0].op, "all_reduce");
    EXPECT_EQ(in_flight()[0].group, g);
  }
  EXPECT_TRUE(in_flight().empty());
}

TEST_F(Watchdog, MoreWaitsThanSlotsAreNotWatchedButHarmless) {
  std::vector<std::unique_ptr<WaitScope>> scopes;
  for (int i = 0; i < kSlots + 3; ++i) scopes.push_back(std::make_unique<WaitScope>("all_gather", 0));
  EXPECT_EQ(in_flight().size(), static_cast<size_t>(kSlots));
  scopes.clear();
  EXPECT_TRUE(in_flight().empty());
}

TEST_F(Watchdog, OverdueOnlyPastTheTimeoutAndNeverWhenOff) {
  const int g = register_group("the world group (2 ranks)");
  const WaitScope w("broadcast", g);
  const double now = now_s();
  Wait found;
  EXPECT_FALSE(find_overdue(now + 1e6, &found)) << "timeout 0 is off";
  set_timeout(10);
  EXPECT_FALSE(find_overdue(now + 9, &found));
  ASSERT_TRUE(find_overdue(now + 11, &found));
  EXPECT_STREQ(found.op, "broadcast");
  EXPECT_EQ(found.group, g);
}

TEST_F(Watchdog, AllowancesExtendTheTimeoutAddUpAndEnd) {
  set_timeout(10);
  const WaitScope w("barrier", 0);
  const double now = now_s();
  Wait found;
  {
    Allowance a(100);
    EXPECT_DOUBLE_EQ(allowance_s(), 100);
    EXPECT_GT(allowance_left_s(now_s()), 99);
    EXPECT_FALSE(find_overdue(now + 50, &found));
    {
      const Allowance b(50);
      EXPECT_DOUBLE_EQ(allowance_s(), 150);
      EXPECT_FALSE(find_overdue(now + 150, &found));
    }
    EXPECT_TRUE(find_overdue(now + 150, &found));
    a.end();
    a.end();  // once only
    EXPECT_DOUBLE_EQ(allowance_s(), 0);
    EXPECT_DOUBLE_EQ(allowance_left_s(now_s()), 0);
  }
  EXPECT_DOUBLE_EQ(allowance_s(), 0);
  EXPECT_TRUE(find_overdue(now + 11, &found));
}

TEST_F(Watchdog, LocalStateNamesTheOldestWait) {
  set_timeout(5);
  set_step(57);
  RankState idle = local_state(3, now_s());
  EXPECT_EQ(idle.rank, 3);
  EXPECT_EQ(idle.answered, 1);
  EXPECT_EQ(idle.waiting, 0);
  EXPECT_EQ(idle.step, 57);
  const int g = register_group("the world group (2 ranks)");
  const WaitScope first("all_reduce", g);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const WaitScope second("barrier", g);
  const RankState st = local_state(1, now_s() + 6);
  EXPECT_EQ(st.waiting, 1);
  EXPECT_EQ(st.overdue, 1);
  EXPECT_STREQ(st.op, "all_reduce");
  EXPECT_STREQ(st.group, "the world group (2 ranks)");
  EXPECT_GT(st.waited_s, 6);
  EXPECT_EQ(local_state(1, now_s() + 1).overdue, 0);
}

RankState waiting_in(int rank, const char* op, const char* group, int64_t step) {
  RankState s;
  s.rank = rank;
  s.answered = 1;
  s.waiting = 1;
  s.step = step;
  std::snprintf(s.op, sizeof s.op, "%s", op);
  std::snprintf(s.group, sizeof s.group, "%s", group);
  return s;
}

TEST_F(Watchdog, MessageNamesTheCollectiveTheSilentRankAndTheWaiters) {
  const int g = register_group("the world group (2 ranks)");
  Wait stuck;
  stuck.op = "all_reduce";
  stuck.group = g;
  RankState silent;
  silent.rank = 1;
  const std::vector<RankState> states = {waiting_in(0, "all_reduce", "the world group (2 ranks)", 57), silent};
  const std::string msg = timeout_message(stuck, 300, 300, 57, states, {"node-a", "node-b"});
  EXPECT_EQ(msg,
            "all_reduce on the world group (2 ranks) has not completed after 300 s (parallel.timeout_s) at step 57; "
            "rank 1 (host node-b) did not answer — it is stopped, hung or dead; rank 0 waits in all_reduce on the "
            "world group (2 ranks). Set parallel.timeout_s higher if steps legitimately take longer, or 0 to turn "
            "the watchdog off");
}

TEST_F(Watchdog, MessageGroupsRanksAndNamesOddOnesOut) {
  const int g = register_group("the world group (6 ranks)");
  Wait stuck;
  stuck.op = "barrier";
  stuck.group = g;
  std::vector<RankState> states;
  for (int r : {0, 1, 2}) states.push_back(waiting_in(r, "barrier", "the world group (6 ranks)", 12));
  RankState busy;
  busy.rank = 3;
  busy.answered = 1;
  busy.step = 12;
  states.push_back(busy);
  RankState gone4, gone5;
  gone4.rank = 4;
  gone5.rank = 5;
  states.push_back(gone4);
  states.push_back(gone5);
  states[2] = waiting_in(2, "all_reduce", "the world group (6 ranks)", 11);
  const std::string msg = timeout_message(stuck, 905, 5, 12, states, {"a", "a", "a", "a", "b", "c"});
  EXPECT_NE(msg.find("after 905 s (parallel.timeout_s = 5 plus 900 s allowed for a checkpoint) at step 12"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("ranks 4, 5 (hosts b, c) did not answer — they are stopped"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rank 3 (host a) answered but is in no collective"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ranks 0, 1 wait in barrier on the world group (6 ranks);"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rank 2 waits in all_reduce on the world group (6 ranks) at step 11"), std::string::npos) << msg;
  set_step(0);
  EXPECT_NE(timeout_message(stuck, 5, 5, 0, {}, {}).find("before the first training step"), std::string::npos);
}

// Waits on two threads come and go while a reader looks: every copy it gets
// is consistent (an op with its own group, never a mix of two waits).
TEST_F(Watchdog, ConcurrentScopesNeverTearACopy) {
  const int ga = register_group("group a");
  const int gb = register_group("group b");
  std::atomic<bool> stop{false};
  auto churn = [&](const char* op, int group) {
    while (!stop.load(std::memory_order_relaxed)) {
      const WaitScope w(op, group);
    }
  };
  std::thread t1(churn, "all_reduce", ga), t2(churn, "barrier", gb);
  int seen = 0;
  const double until = now_s() + 2;
  while (seen < 5000 && now_s() < until)
    for (const Wait& w : in_flight()) {
      ++seen;
      if (std::strcmp(w.op, "all_reduce") == 0) EXPECT_EQ(w.group, ga);
      else EXPECT_EQ(w.group, gb);
      EXPECT_GT(w.started_s, 0);
    }
  stop = true;
  t1.join();
  t2.join();
  EXPECT_TRUE(in_flight().empty());
  EXPECT_GT(seen, 0);
}

}  // namespace
}  // namespace lintrain::watchdog
