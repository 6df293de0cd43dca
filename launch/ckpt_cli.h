// `lintrain ckpt ...`: the checkpoint service and the tools around checkpoints.
//
//   lintrain ckpt serve --dir DIR [--listen HOST:PORT] [--token-file FILE]
//                       [--stale-after SECONDS] [--ready-file FILE]
//   lintrain ckpt ls DIR|HOST:PORT [--token-file FILE]
//   lintrain ckpt verify PATH
//   lintrain ckpt export PATH --out DIR
//
// PATH is a checkpoint folder (…/step-00000100) or a checkpoint directory
// (its newest complete checkpoint; `verify` checks all of them).
#pragma once

#include <string>

#include "launch/cli.h"

namespace lintrain {

// `command` is serve, ls, verify or export, with its options as parsed
// (launch/cli.h). Returns the exit code: 0, 1 when a check failed (verify)
// or the service stopped on an error; throws lintrain::Error for bad input,
// which main prints as one line.
int run_ckpt(const std::string& command, const CkptArgs& args);

}  // namespace lintrain
