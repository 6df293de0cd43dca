#include "launch/build_info.h"

#include "runtime/error.h"

namespace lintrain {

std::string version_text(const BuildInfo& info) {
  return str_cat("lintrain ", info.version, "\n",
                 "git commit: ", info.git_commit, "\n",
                 "CUDA: ", info.cuda, "\n",
                 "NCCL: ", info.nccl, "\n",
                 "BLAS: ", info.blas, "\n",
                 "MPI: ", info.mpi);
}

}  // namespace lintrain
