// Stop signals: SIGTERM and SIGUSR1 (what Slurm sends before a time limit
// or preemption) and a first Ctrl-C ask the run to stop after the current
// step with a checkpoint; a second Ctrl-C stops at once.
#pragma once

namespace lintrain {

// Installs the handlers for the rest of the process's life (idempotent): a
// signal before train() starts is answered at its first step. train() calls
// it; main calls it first thing so that start-up is covered too.
void install_stop_signals();
// The stop signal this process received (the last Ctrl-C wins), or 0.
int stop_signal_received();
// How many stop signals this process has received: a change tells one that
// arrived after a given moment (a wait that a signal cuts short).
int stop_signal_count();
// What TrainResult::stopped_by_signal records: the signal this rank got, or
// -1 when only another rank got one.
int stop_cause();
// "SIGTERM", "SIGUSR1", "Ctrl-C (SIGINT)", or "a signal to another rank".
const char* signal_name(int sig);

}  // namespace lintrain
