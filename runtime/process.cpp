#include "runtime/process.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>

#include "runtime/error.h"

namespace lintrain {

namespace {
std::atomic<int> g_rank{-1};
}  // namespace

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "?";
  return buf;
}

void set_process_rank(int rank) { g_rank.store(rank); }

std::string rank_and_host() {
  std::string rank = "?";
  if (g_rank.load() >= 0) {
    rank = std::to_string(g_rank.load());
  } else {
    for (const char* var : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"})
      if (const char* v = std::getenv(var); v != nullptr && *v != '\0') {
        rank = v;
        break;
      }
  }
  return str_cat("rank ", rank, " (host ", host_name(), ")");
}

void throw_call_error(const char* lib, const char* call, const char* file, int line, const std::string& message) {
  throw Error(str_cat("[", lib, "] ", call, " failed at ", file, ":", line, " on ", rank_and_host(), ": ", message));
}

}  // namespace lintrain
