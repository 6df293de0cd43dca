#include "runtime/failpoint.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace lintrain {
namespace {

struct Point {
  std::string name;
  int64_t value;  // -1 = any
};

const std::vector<Point>* parse_points() {
  const char* env = std::getenv("LINTRAIN_FAILPOINTS");
  if (!env || !*env) return nullptr;
  auto* points = new std::vector<Point>();  // lives for the process
  std::string spec = env;
  size_t start = 0;
  while (start <= spec.size()) {
    size_t end = spec.find(',', start);
    if (end == std::string::npos) end = spec.size();
    std::string item = spec.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) {
      const size_t at = item.find('@');
      Point p{item.substr(0, at), -1};
      if (at != std::string::npos) p.value = std::strtoll(item.c_str() + at + 1, nullptr, 10);
      points->push_back(std::move(p));
    }
    start = end + 1;
  }
  return points;
}

}  // namespace

bool failpoint(const char* name, int64_t value) {
  static const std::vector<Point>* points = parse_points();
  if (!points) return false;
  for (const Point& p : *points)
    if (p.name == name && (p.value < 0 || p.value == value)) return true;
  return false;
}

void failpoint_kill(const char* name, int64_t value) {
  if (!failpoint(name, value)) return;
  const std::string msg = std::string("lintrain: failpoint ") + name + ": killing this process (LINTRAIN_FAILPOINTS)\n";
  if (::write(2, msg.data(), msg.size()) < 0) {
    // Nothing to do: the process dies next either way.
  }
  ::kill(::getpid(), SIGKILL);
}

}  // namespace lintrain
