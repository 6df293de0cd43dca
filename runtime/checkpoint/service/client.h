// The trainer's side of the checkpoint service: a CheckpointTarget that
// streams a rank's share of each save to it, and a CheckpointSource that
// reads published checkpoints back for resume.
//
// While the service is away (restarting, unreachable) every call is retried
// with exponential backoff (0.1 s doubling to 5 s, with jitter) until the
// save's deadline (checkpoint.timeout_s) or until the next save supersedes
// it; training goes on meanwhile. Errors a retry cannot fix (a wrong token,
// a refused name, another writer of the step) end the save at once.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "runtime/checkpoint/reader.h"
#include "runtime/checkpoint/saver.h"

namespace lintrain {

struct ServiceEndpoint {
  std::string address;  // HOST:PORT
  std::string token;    // "" = none
  // What gives the token where this client runs, named when the service
  // refuses the call's token (UNAUTHENTICATED).
  std::string token_setting = "checkpoint.token_file";
};

// The endpoint for `address`, with the token read from token_file when given.
ServiceEndpoint service_endpoint(const std::string& address, const std::string& token_file);

// Asks the service who it is; returns its checkpoint directory. Throws
// ConfigError when it refuses this client (a wrong or missing token, another
// protocol) and Error when it does not answer within timeout_s.
std::string service_hello(const ServiceEndpoint& ep, double timeout_s);

// `notice` hears (from the saver's thread) when the service stops answering
// and when it answers again.
std::unique_ptr<CheckpointTarget> service_target(const ServiceEndpoint& ep, int rank, int world_size,
                                                 std::function<void(const std::string&)> notice = nullptr);

// Reads published checkpoints through the service; calls give up after timeout_s.
std::unique_ptr<CheckpointSource> service_source(const ServiceEndpoint& ep, double timeout_s);

}  // namespace lintrain
