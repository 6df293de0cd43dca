// Plain-socket answers about a HOST:PORT where gRPC's statuses are vague:
// whether anything listens there (a trainer waiting for its service), and
// why a port cannot be bound (a second service on a port in use).
#pragma once

#include <string>

namespace lintrain {

enum class PortState {
  kListening,  // a TCP connection was accepted
  kRefused,    // every address of the host refused it: nothing listens there
  kUnknown,    // no answer within the time, unreachable, or not resolvable
};

// Tries a TCP connection to `address` (HOST:PORT or [V6]:PORT), giving up
// after timeout_s; closes it at once.
PortState probe_port(const std::string& address, double timeout_s);

// The errno a plain bind of `address` gets right now (0: it can be bound;
// EADDRINUSE: another socket listens there; EADDRNOTAVAIL: not an address of
// this host). The probe socket is closed before returning.
int bind_errno(const std::string& address);

// HOST and PORT of "HOST:PORT" or "[V6]:PORT" (brackets removed); false when
// it has no port.
bool split_host_port(const std::string& address, std::string* host, std::string* port);

// Throws ConfigError unless `address` is HOST:PORT (or [V6]:PORT) with a
// port in 1..65535; the message names `origin` (where the value came from:
// "checkpoint.service", "LINTRAIN_CKPT_SERVICE", "ckpt ls").
void check_service_address(const std::string& address, const std::string& origin);

}  // namespace lintrain
