// The watchdog's bookkeeping (see watchdog.h); the MPI half is in
// parallel/mpi_communicator.cpp.
#include "parallel/watchdog.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>

#include "runtime/error.h"

namespace lintrain::watchdog {
namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// One wait in flight. `seq` is odd while the owner rewrites the fields, so a
// reader that sees the same even value before and after reading them has a
// consistent copy. start_ns == 0: the slot holds no wait.
struct Slot {
  std::atomic<bool> claimed{false};
  std::atomic<uint32_t> seq{0};
  std::atomic<const char*> op{nullptr};
  std::atomic<int> group{-1};
  std::atomic<int64_t> start_ns{0};
};

Slot g_slots[kSlots];
std::atomic<double> g_timeout_s{0.0};
std::atomic<int64_t> g_step{0};
std::atomic<int64_t> g_extra_ms{0};        // sum of the active allowances
std::atomic<int> g_allowances{0};          // how many are active
std::atomic<int64_t> g_allowance_until{0};  // the latest end among them (steady ns)

std::mutex g_groups_mu;
std::deque<std::string> g_groups;  // never shrinks: ids stay valid for the process

void copy_text(char* dst, size_t cap, const std::string& s) {
  const size_t n = std::min(cap - 1, s.size());
  std::memcpy(dst, s.data(), n);
  dst[n] = '\0';
}

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s >= 10 ? std::floor(s) : std::floor(s * 10) / 10);
  return buf;
}

}  // namespace

void set_timeout(double seconds) { g_timeout_s.store(seconds > 0 ? seconds : 0.0, std::memory_order_relaxed); }
double timeout() { return g_timeout_s.load(std::memory_order_relaxed); }
void set_step(int64_t s) { g_step.store(s, std::memory_order_relaxed); }
int64_t step() { return g_step.load(std::memory_order_relaxed); }

int register_group(const std::string& description) {
  std::lock_guard<std::mutex> lock(g_groups_mu);
  for (size_t i = 0; i < g_groups.size(); ++i)
    if (g_groups[i] == description) return static_cast<int>(i);
  g_groups.push_back(description);
  return static_cast<int>(g_groups.size() - 1);
}

std::string group_description(int id) {
  std::lock_guard<std::mutex> lock(g_groups_mu);
  if (id < 0 || static_cast<size_t>(id) >= g_groups.size()) return "a group";
  return g_groups[static_cast<size_t>(id)];
}

WaitScope::WaitScope(const char* op, int group) noexcept : slot_(-1) {
  for (int i = 0; i < kSlots; ++i) {
    bool expected = false;
    if (g_slots[i].claimed.load(std::memory_order_relaxed) ||
        !g_slots[i].claimed.compare_exchange_strong(expected, true, std::memory_order_acquire))
      continue;
    Slot& s = g_slots[i];
    s.seq.fetch_add(1, std::memory_order_relaxed);  // odd: being written
    std::atomic_thread_fence(std::memory_order_release);
    s.op.store(op, std::memory_order_relaxed);
    s.group.store(group, std::memory_order_relaxed);
    s.start_ns.store(now_ns(), std::memory_order_relaxed);
    s.seq.fetch_add(1, std::memory_order_release);  // even: consistent
    slot_ = i;
    return;
  }
}

WaitScope::~WaitScope() {
  if (slot_ < 0) return;
  Slot& s = g_slots[slot_];
  s.seq.fetch_add(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  s.start_ns.store(0, std::memory_order_relaxed);
  s.seq.fetch_add(1, std::memory_order_release);
  s.claimed.store(false, std::memory_order_release);
}

Allowance::Allowance(double seconds) noexcept : seconds_(std::max(0.0, seconds)) {
  until_ns_ = now_ns() + static_cast<int64_t>(seconds_ * 1e9);
  g_extra_ms.fetch_add(static_cast<int64_t>(seconds_ * 1e3), std::memory_order_relaxed);
  g_allowances.fetch_add(1, std::memory_order_relaxed);
  int64_t cur = g_allowance_until.load(std::memory_order_relaxed);
  while (cur < until_ns_ && !g_allowance_until.compare_exchange_weak(cur, until_ns_, std::memory_order_relaxed)) {
  }
}

void Allowance::end() noexcept {
  if (!active_) return;
  active_ = false;
  g_extra_ms.fetch_sub(static_cast<int64_t>(seconds_ * 1e3), std::memory_order_relaxed);
  if (g_allowances.fetch_sub(1, std::memory_order_relaxed) == 1) g_allowance_until.store(0, std::memory_order_relaxed);
}

double now_s() { return static_cast<double>(now_ns()) * 1e-9; }

std::vector<Wait> in_flight() {
  std::vector<Wait> out;
  for (Slot& s : g_slots) {
    for (int attempt = 0; attempt < 8; ++attempt) {
      const uint32_t before = s.seq.load(std::memory_order_acquire);
      if (before & 1u) continue;  // the owner is writing it; look again
      const char* op = s.op.load(std::memory_order_relaxed);
      const int group = s.group.load(std::memory_order_relaxed);
      const int64_t start = s.start_ns.load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (s.seq.load(std::memory_order_relaxed) != before) continue;
      if (start != 0 && op) out.push_back(Wait{op, group, static_cast<double>(start) * 1e-9});
      break;
    }
  }
  return out;
}

double allowance_s() { return static_cast<double>(g_extra_ms.load(std::memory_order_relaxed)) * 1e-3; }

double allowance_left_s(double now) {
  if (g_allowances.load(std::memory_order_relaxed) == 0) return 0;
  const double until = static_cast<double>(g_allowance_until.load(std::memory_order_relaxed)) * 1e-9;
  return std::max(0.0, until - now);
}

bool find_overdue(double now, Wait* out) {
  const double t = timeout();
  if (t <= 0) return false;
  const double limit = t + allowance_s();
  bool found = false;
  for (const Wait& w : in_flight()) {
    if (now - w.started_s <= limit) continue;
    if (!found || w.started_s < out->started_s) *out = w;
    found = true;
  }
  return found;
}

RankState local_state(int rank, double now) {
  RankState st;
  st.rank = rank;
  st.answered = 1;
  st.step = step();
  st.allowance_left_s = allowance_left_s(now);
  const std::vector<Wait> waits = in_flight();
  const Wait* oldest = nullptr;
  for (const Wait& w : waits)
    if (!oldest || w.started_s < oldest->started_s) oldest = &w;
  if (oldest) {
    st.waiting = 1;
    st.waited_s = now - oldest->started_s;
    const double t = timeout();
    st.overdue = t > 0 && st.waited_s > t + allowance_s();
    copy_text(st.op, sizeof st.op, oldest->op);
    copy_text(st.group, sizeof st.group, group_description(oldest->group));
  }
  return st;
}

std::string format_ranks(const std::vector<int>& ranks) {
  std::string out;
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    if (!out.empty()) out += ", ";
    out += std::to_string(ranks[i]);
    if (j > i) out += (j == i + 1 ? ", " : "-") + std::to_string(ranks[j]);
    i = j + 1;
  }
  return out;
}

std::string timeout_message(const Wait& stuck, double limit_s, double timeout_s, int64_t step,
                            const std::vector<RankState>& states, const std::vector<std::string>& hosts) {
  std::string msg = str_cat(stuck.op, " on ", group_description(stuck.group), " has not completed after ",
                            seconds_text(limit_s), " s (parallel.timeout_s");
  if (limit_s > timeout_s + 0.5)
    msg += str_cat(" = ", seconds_text(timeout_s), " plus ", seconds_text(limit_s - timeout_s),
                   " s allowed for a checkpoint");
  msg += ")";
  msg += step > 0 ? str_cat(" at step ", step) : std::string(" before the first training step");

  auto host_of = [&](int r) {
    return r >= 0 && static_cast<size_t>(r) < hosts.size() ? hosts[static_cast<size_t>(r)] : std::string("?");
  };
  auto who = [&](const std::vector<int>& ranks) {
    std::vector<std::string> hs;
    for (int r : ranks)
      if (std::find(hs.begin(), hs.end(), host_of(r)) == hs.end()) hs.push_back(host_of(r));
    std::string h;
    for (size_t i = 0; i < hs.size() && i < 8; ++i) h += (i ? ", " : "") + hs[i];
    if (hs.size() > 8) h += ", ...";
    return str_cat(ranks.size() == 1 ? "rank " : "ranks ", format_ranks(ranks), " (", hs.size() == 1 ? "host " : "hosts ",
                   h, ")");
  };

  std::vector<int> silent, idle;
  // Waiting ranks grouped by what they wait in (and at which step, when not ours).
  std::map<std::string, std::vector<int>> waiting;
  std::vector<std::string> waiting_order;
  for (const RankState& s : states) {
    if (!s.answered) {
      silent.push_back(s.rank);
    } else if (!s.waiting) {
      idle.push_back(s.rank);
    } else {
      std::string what = str_cat(s.op, " on ", s.group);
      if (s.step != step) what += str_cat(" at step ", s.step);
      if (!waiting.count(what)) waiting_order.push_back(what);
      waiting[what].push_back(s.rank);
    }
  }
  std::vector<std::string> parts;
  if (!silent.empty())
    parts.push_back(str_cat(who(silent), " did not answer — ", silent.size() == 1 ? "it is" : "they are",
                            " stopped, hung or dead"));
  if (!idle.empty())
    parts.push_back(str_cat(who(idle), idle.size() == 1 ? " answered but is" : " answered but are",
                            " in no collective — busy or stuck outside communication"));
  for (const std::string& what : waiting_order) {
    const std::vector<int>& r = waiting[what];
    parts.push_back(str_cat(r.size() == 1 ? "rank " : "ranks ", format_ranks(r), r.size() == 1 ? " waits in " : " wait in ",
                            what));
  }
  for (const std::string& p : parts) msg += "; " + p;
  msg += ". Set parallel.timeout_s higher if steps legitimately take longer, or 0 to turn the watchdog off";
  return msg;
}

}  // namespace lintrain::watchdog
