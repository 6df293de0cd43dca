// main() of every multi-rank test (tests/mpi/test_*.cpp, run by ctest as
// `mpiexec -n N <test>`). Every rank runs every test and asserts on its own
// results. Rank 0 prints GoogleTest's usual report; the other ranks print
// only their failed assertions, prefixed with their rank. After each test the
// ranks agree on which of them failed (rank 0 names them), and the exit code
// of every rank is non-zero if any rank failed any test, so mpiexec fails.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "mpi_test.h"

namespace lintrain {

namespace {

MpiRuntime* g_runtime = nullptr;

class RankFailurePrinter : public testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const testing::TestPartResult& r) override {
    if (!r.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_, r.file_name() ? r.file_name() : "?", r.line_number(),
                 r.summary());
  }

 private:
  int rank_;
};

// Collective at the end of every test: which ranks failed it.
class CrossRankVerdict : public testing::EmptyTestEventListener {
 public:
  explicit CrossRankVerdict(int rank, int size) : rank_(rank), size_(size) {}
  void OnTestEnd(const testing::TestInfo& info) override {
    int failed = info.result()->Failed() ? 1 : 0;
    std::vector<int> all(static_cast<size_t>(size_));
    MPI_Allgather(&failed, 1, MPI_INT, all.data(), 1, MPI_INT, MPI_COMM_WORLD);
    std::string ranks;
    for (int r = 0; r < size_; ++r)
      if (all[static_cast<size_t>(r)]) ranks += " " + std::to_string(r);
    if (ranks.empty()) return;
    const std::string line = std::string(info.test_suite_name()) + "." + info.name() + " failed on rank(s)" + ranks;
    if (rank_ == 0) std::printf("[  RANKS   ] %s\n", line.c_str());
    failures_.push_back(line);
  }
  // Rank 0's GoogleTest summary only knows its own failures: repeat them all.
  void OnTestProgramEnd(const testing::UnitTest&) override {
    if (rank_ != 0 || failures_.empty()) return;
    std::printf("[  FAILED  ] %zu test(s) failed on some rank:\n", failures_.size());
    for (const std::string& f : failures_) std::printf("[  FAILED  ] %s\n", f.c_str());
    std::fflush(stdout);
  }

 private:
  int rank_, size_;
  std::vector<std::string> failures_;
};

}  // namespace

MpiRuntime& mpi_runtime() { return *g_runtime; }

}  // namespace lintrain

int main(int argc, char** argv) {
  lintrain::MpiRuntime mpi(&argc, &argv);
  lintrain::g_runtime = &mpi;
  testing::InitGoogleTest(&argc, argv);
  testing::TestEventListeners& listeners = testing::UnitTest::GetInstance()->listeners();
  if (mpi.rank() != 0) {
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new lintrain::RankFailurePrinter(mpi.rank()));
  }
  listeners.Append(new lintrain::CrossRankVerdict(mpi.rank(), mpi.size()));
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return any_failed;
}
