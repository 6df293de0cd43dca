// What `lintrain --version` prints: the version (CMakeLists.txt's
// project(VERSION)), the git commit the binary was built from, and what the
// build found (CUDA, NCCL, BLAS, MPI).
//
// build_info() is generated into the build folder by
// cmake/LintrainBuildInfo.cmake and linked into the `lintrain` binary alone:
// the configure-time facts when CMake configures, the git commit at every
// build by a script that rewrites its file only when the commit (or -dirty)
// changed, so an unchanged tree rebuilds nothing and a new commit recompiles
// one small file and relinks one binary, not every test.
#pragma once

#include <string>

namespace lintrain {

struct BuildInfo {
  std::string version;     // "0.1.0"
  std::string git_commit;  // short hash, "-dirty" when tracked files differed from it; "unknown" without git
  std::string cuda;        // "yes, toolkit 12.4 (...)" or "no (why)"
  std::string nccl;        // "yes, 2.21.5 (library)" or "no (why)"
  std::string blas;        // "OpenBLAS 0.3.21 (library)"
  std::string mpi;         // "Open MPI 4.1.4 (MPI 3.1, mpiexec)"
};

// This binary's build (the generated files; only `lintrain` links them).
BuildInfo build_info();

// The text of `lintrain --version`: "lintrain VERSION", then one
// "name: value" line each for the commit and what the build found.
std::string version_text(const BuildInfo& info);

}  // namespace lintrain
