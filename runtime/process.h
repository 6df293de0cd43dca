// Who this process is, for error messages that must say where they happened
// (a job of hundreds of ranks prints one line per failing rank): its host and
// its rank in the job, and the one formatter of the failed-library-call
// messages of MPI, NCCL, CUDA, cuBLAS and cuBLASLt.
#pragma once

#include <string>

namespace lintrain {

std::string host_name();  // gethostname(), "?" when it fails

// The rank of this process in the whole job, told once the communicator knows
// it (MpiRuntime does at start). Before that, the launcher's environment
// (OMPI_COMM_WORLD_RANK, PMI_RANK, SLURM_PROCID) is used when set.
void set_process_rank(int rank);
// "rank R (host H)"; R is "?" when nothing has said it yet.
std::string rank_and_host();

// Throws Error "[lib] CALL failed at FILE:LINE on rank R (host H): MESSAGE".
[[noreturn]] void throw_call_error(const char* lib, const char* call, const char* file, int line,
                                   const std::string& message);

}  // namespace lintrain
