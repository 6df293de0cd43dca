#include "runtime/checkpoint/service/tcp_probe.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <string>

#include "runtime/error.h"

namespace lintrain {
namespace {

// getaddrinfo's list, freed with its owner.
struct Addresses {
  addrinfo* list = nullptr;
  Addresses(const std::string& address, bool passive) {
    std::string host, port;
    if (!split_host_port(address, &host, &port)) return;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &list) != 0) list = nullptr;
  }
  ~Addresses() {
    if (list) ::freeaddrinfo(list);
  }
  Addresses(const Addresses&) = delete;
  Addresses& operator=(const Addresses&) = delete;
};

// One non-blocking connect, waited for up to timeout_ms: 0 when accepted,
// else its errno (ETIMEDOUT when no answer came).
int connect_errno(const addrinfo* a, int timeout_ms) {
  const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
  if (fd < 0) return errno;
  int err = 0;
  if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
    err = errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      const int n = ::poll(&p, 1, timeout_ms);
      socklen_t len = sizeof err;
      if (n <= 0) err = ETIMEDOUT;
      else if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    }
  }
  ::close(fd);
  return err;
}

}  // namespace

bool split_host_port(const std::string& address, std::string* host, std::string* port) {
  size_t colon;
  if (!address.empty() && address[0] == '[') {
    const size_t close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() || address[close + 1] != ':') return false;
    *host = address.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = address.rfind(':');
    if (colon == std::string::npos) return false;
    *host = address.substr(0, colon);
  }
  *port = address.substr(colon + 1);
  return !host->empty() && !port->empty();
}

PortState probe_port(const std::string& address, double timeout_s) {
  const Addresses addrs(address, false);
  if (!addrs.list) return PortState::kUnknown;
  const int timeout_ms = static_cast<int>(std::ceil(std::max(0.001, timeout_s) * 1000));
  bool all_refused = true;
  for (const addrinfo* a = addrs.list; a; a = a->ai_next) {
    const int err = connect_errno(a, timeout_ms);
    if (err == 0) return PortState::kListening;
    all_refused &= err == ECONNREFUSED;
  }
  return all_refused ? PortState::kRefused : PortState::kUnknown;
}

int bind_errno(const std::string& address) {
  const Addresses addrs(address, true);
  if (!addrs.list) return EADDRNOTAVAIL;
  const addrinfo* a = addrs.list;
  const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
  if (fd < 0) return errno;
  // As gRPC binds: SO_REUSEADDR (a port in TIME_WAIT is free), no SO_REUSEPORT.
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const int err = ::bind(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

}  // namespace lintrain

namespace lintrain {

void check_service_address(const std::string& address, const std::string& origin) {
  std::string host, port;
  const bool split = split_host_port(address, &host, &port);
  bool port_ok = split && !port.empty() && port.size() <= 5 &&
                 port.find_first_not_of("0123456789") == std::string::npos;
  if (port_ok) {
    const long n = std::stol(port);
    port_ok = n >= 1 && n <= 65535;
  }
  if (split && !host.empty() && port_ok) return;
  throw ConfigError(str_cat(origin, ": '", address, "' is not a checkpoint service address: ",
                            !split || host.empty() ? "want HOST:PORT (or [V6]:PORT), e.g. 127.0.0.1:7070"
                                                   : "its port must be a number from 1 to 65535",
                            "; give the address `lintrain ckpt serve --listen` was started with"));
}

}  // namespace lintrain
