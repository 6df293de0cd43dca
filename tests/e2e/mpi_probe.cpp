// mpi_probe: a tiny MPI program the launch tests run in place of `lintrain
// train` to check the launch machinery alone (mpirun, srun + PMIx, sbatch,
// failure propagation) without the trainer:
//   mpi_probe [--sleep SECONDS] [anything else, ignored]
// Every rank prints one line
//   mpi_probe: rank R of N pid P host H
// then all ranks check one MPI_Allreduce (the sum of the ranks) and rank 0
// prints "mpi_probe: allreduce ok N"; with --sleep each rank then waits that
// long (so a test can kill one of them) and meets the others at a barrier.
// Exits 0 on success, 1 when the allreduce gives a wrong sum.
#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  double sleep_s = 0;
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], "--sleep")) sleep_s = std::atof(argv[i + 1]);

  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  std::printf("mpi_probe: rank %d of %d pid %d host %s\n", rank, size, static_cast<int>(getpid()), host);
  std::fflush(stdout);

  long mine = rank, sum = -1;
  MPI_Allreduce(&mine, &sum, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
  const long want = static_cast<long>(size) * (size - 1) / 2;
  if (sum != want) {
    std::fprintf(stderr, "mpi_probe: rank %d: allreduce gave %ld, want %ld\n", rank, sum, want);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (rank == 0) {
    std::printf("mpi_probe: allreduce ok %d\n", size);
    std::fflush(stdout);
  }
  if (sleep_s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(sleep_s));
  MPI_Barrier(MPI_COMM_WORLD);
  MPI_Finalize();
  return 0;
}
