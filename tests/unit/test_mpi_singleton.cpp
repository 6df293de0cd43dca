// MpiRuntime in a process that mpirun did not start (how `lintrain train`
// runs on a laptop): an MPI singleton, a world of one rank whose collectives
// are copies. One test, because MPI can be initialised once per process.
#include <gtest/gtest.h>

#include "../comm_conformance.h"
#include "parallel/mpi_communicator.h"
#include "parallel/process_grid.h"
#include "runtime/error.h"

using namespace lintrain;

TEST(MpiRuntime, SingletonWorldWithoutMpirun) {
  std::unique_ptr<Communicator> survivor;
  {
    MpiRuntime mpi;
    EXPECT_TRUE(MpiRuntime::active());
    EXPECT_EQ(mpi.rank(), 0);
    EXPECT_EQ(mpi.size(), 1);
    EXPECT_EQ(mpi.local_rank(), 0);
    EXPECT_EQ(mpi.local_size(), 1);
    EXPECT_EQ(mpi.thread_level(), MPI_THREAD_MULTIPLE);
    auto world = mpi.world();
    EXPECT_EQ(world->name(), "mpi");
    conformance::run_all(*world);
    ProcessGrid grid(ParallelConfig{1, 1}, *world);
    EXPECT_EQ(grid.sp().size(), 1);
    EXPECT_THROW(ProcessGrid(ParallelConfig{2, 1}, *world), ConfigError);
    survivor = mpi.world();
  }  // MPI_Finalize
  EXPECT_FALSE(MpiRuntime::active());
  survivor.reset();  // after MPI_Finalize: must skip MPI_Comm_free, not crash
  try {
    MpiRuntime again;
    FAIL() << "MPI initialised twice";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already finalized"), std::string::npos) << e.what();
  }
}
