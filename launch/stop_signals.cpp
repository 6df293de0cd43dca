// The stop-signal handlers (launch/stop_signals.h).
#include "launch/stop_signals.h"

#include <unistd.h>

#include <csignal>
#include <cstring>

namespace lintrain {

namespace {

// SIGTERM and SIGUSR1 (what Slurm sends before a time limit or preemption)
// ask the run to stop after the current step with a checkpoint, and so does
// a first Ctrl-C (SIGINT); a second Ctrl-C stops at once. The handler is
// installed once for the life of the process (install_stop_signals) and never
// taken away: a signal during start-up is answered at the first step, and a
// second SIGTERM while the run is already saving and exiting changes nothing.
volatile sig_atomic_t g_stop_signal = 0;
volatile sig_atomic_t g_stop_count = 0;
void on_stop_signal(int sig) {
  g_stop_count = g_stop_count + 1;
  if (sig == SIGINT) {
    if (g_stop_signal == SIGINT) {
      std::signal(SIGINT, SIG_DFL);
      std::raise(SIGINT);
      return;
    }
    static const char msg[] = "\nlintrain: stopping after this step with a checkpoint (Ctrl-C again to stop now)\n";
    if (::write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
      // Nothing to do about a closed stderr in a signal handler.
    }
  }
  if (g_stop_signal == 0 || sig == SIGINT) g_stop_signal = sig;
}

}  // namespace

int stop_signal_received() { return g_stop_signal; }

int stop_signal_count() { return g_stop_count; }

int stop_cause() { return stop_signal_received() > 0 ? stop_signal_received() : -1; }

const char* signal_name(int sig) {
  return sig == SIGTERM ? "SIGTERM" : sig == SIGUSR1 ? "SIGUSR1" : sig == SIGINT ? "Ctrl-C (SIGINT)"
                                                                               : "a signal to another rank";
}

void install_stop_signals() {
  static bool installed = false;
  if (installed) return;
  installed = true;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

}  // namespace lintrain
