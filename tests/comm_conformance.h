// One conformance suite for every Communicator (Self, Thread, MPI; NCCL has
// its own test because it needs device buffers). As in nccl-tests, each rank
// fills its send buffers from (rank, index), computes the expected outputs
// itself and checks them exactly: the values are small integers, so every
// sum is exact in float and no tolerance is needed. The same holds for the
// bf16 (integers within bf16's 8 bits) and f64 (integers past float's 24 bits)
// checks, and all_gather of any dtype is checked byte for byte. Each function is called on
// every rank of a group (from run_ranks or under mpirun) and uses EXPECT only,
// so a failing rank still takes part in every later collective.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "parallel/communicator.h"
#include "runtime/dtype.h"
#include "runtime/error.h"

namespace lintrain::conformance {

// Integer-valued, distinct per (rank, i); sums over <= 64 ranks stay exact.
inline float value(int rank, size_t i) { return static_cast<float>((rank + 1) * 1000 + static_cast<int>(i % 997)); }

// Non-integer values spanning several binades, so sums round differently in
// different orders: for determinism checks.
inline float rough_value(int rank, size_t i) {
  const uint64_t h = (i * 2654435761u + static_cast<uint64_t>(rank) * 40503u + 12345u) % 65521u;
  return (static_cast<float>(h) / 65521.0f - 0.5f) * static_cast<float>(1 << (i % 9));
}

inline const size_t kCounts[] = {0, 1, 7, 1000, 100003};

inline void check_all_gather(Communicator& c) {
  const int W = c.size(), me = c.rank();
  for (size_t n : kCounts) {
    std::vector<float> send(n), recv(static_cast<size_t>(W) * n, -1.0f);
    for (size_t i = 0; i < n; ++i) send[i] = value(me, i);
    c.all_gather(send.data(), recv.data(), n);
    size_t bad = 0;
    for (int r = 0; r < W; ++r)
      for (size_t i = 0; i < n; ++i) bad += recv[static_cast<size_t>(r) * n + i] != value(r, i);
    EXPECT_EQ(bad, 0u) << "all_gather count " << n << " rank " << me;
    // In place: this rank's part already sits at its slot of recv.
    std::vector<float> inplace(static_cast<size_t>(W) * n, -1.0f);
    for (size_t i = 0; i < n; ++i) inplace[static_cast<size_t>(me) * n + i] = value(me, i);
    c.all_gather(inplace.data() + static_cast<size_t>(me) * n, inplace.data(), n);
    EXPECT_EQ(inplace, recv) << "in-place all_gather count " << n;
  }
}

inline void check_all_reduce(Communicator& c) {
  const int W = c.size(), me = c.rank();
  for (size_t n : kCounts) {
    std::vector<float> buf(n);
    for (size_t i = 0; i < n; ++i) buf[i] = value(me, i);
    c.all_reduce(buf.data(), n);
    size_t bad = 0;
    for (size_t i = 0; i < n; ++i) {
      float want = 0;
      for (int r = 0; r < W; ++r) want += value(r, i);
      bad += buf[i] != want;
    }
    EXPECT_EQ(bad, 0u) << "all_reduce count " << n << " rank " << me;
  }
}

inline void check_reduce_scatter(Communicator& c) {
  const int W = c.size(), me = c.rank();
  for (size_t n : kCounts) {
    const size_t total = static_cast<size_t>(W) * n;
    std::vector<float> send(total), recv(n, -1.0f), want(n, 0.0f);
    for (size_t j = 0; j < total; ++j) send[j] = value(me, j);
    for (size_t i = 0; i < n; ++i)
      for (int r = 0; r < W; ++r) want[i] += value(r, static_cast<size_t>(me) * n + i);
    c.reduce_scatter(send.data(), recv.data(), n);
    EXPECT_EQ(recv, want) << "reduce_scatter count " << n << " rank " << me;
    // In place: the result lands at the front of the send buffer.
    c.reduce_scatter(send.data(), send.data(), n);
    EXPECT_TRUE(std::equal(want.begin(), want.end(), send.begin())) << "in-place reduce_scatter count " << n;
  }
}

inline void check_all_reduce_f64(Communicator& c) {
  const int W = c.size(), me = c.rank();
  std::vector<double> buf = {1.0 + me, 0.25 * me, -3.0, 1e15 + me};
  c.all_reduce_f64(buf.data(), buf.size());
  const double s = W * (W - 1) / 2.0;
  EXPECT_EQ(buf[0], W + s);
  EXPECT_EQ(buf[1], 0.25 * s);
  EXPECT_EQ(buf[2], -3.0 * W);
  EXPECT_EQ(buf[3], 1e15 * W + s);
}

inline void check_broadcast(Communicator& c) {
  const int W = c.size(), me = c.rank();
  for (int root = 0; root < W; ++root) {
    std::vector<unsigned char> buf(1001);
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<unsigned char>(me == root ? (i * 7 + root) : 0);
    c.broadcast(buf.data(), buf.size(), root);
    size_t bad = 0;
    for (size_t i = 0; i < buf.size(); ++i) bad += buf[i] != static_cast<unsigned char>(i * 7 + root);
    EXPECT_EQ(bad, 0u) << "broadcast from root " << root << " to rank " << me;
  }
  c.barrier();
}

// Several non-blocking collectives in flight at once, waited in reverse order
// (MPI allows it; LASP-2 keeps one AllGather in flight per layer).
inline void check_requests_in_flight(Communicator& c) {
  const int W = c.size(), me = c.rank();
  const size_t n = 513;
  std::vector<float> send(n), gathered(static_cast<size_t>(W) * n), summed(n), rs_send(static_cast<size_t>(W) * n),
      rs_recv(n);
  for (size_t i = 0; i < n; ++i) send[i] = summed[i] = value(me, i);
  for (size_t j = 0; j < rs_send.size(); ++j) rs_send[j] = value(me, j);
  Request a = c.iall_gather(send.data(), gathered.data(), n);
  Request b = c.iall_reduce(summed.data(), n);
  Request d = c.ireduce_scatter(rs_send.data(), rs_recv.data(), n);
  d->wait();
  b->wait();
  a->wait();
  a->wait();  // waiting twice is harmless
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    float want = 0, want_rs = 0;
    for (int r = 0; r < W; ++r) {
      want += value(r, i);
      want_rs += value(r, static_cast<size_t>(me) * n + i);
    }
    bad += summed[i] != want;
    bad += rs_recv[i] != want_rs;
    bad += gathered[static_cast<size_t>(W - 1) * n + i] != value(W - 1, i);
  }
  EXPECT_EQ(bad, 0u) << "rank " << me;
  // A request dropped without wait() completes in its destructor.
  { Request dropped = c.iall_reduce(summed.data(), n); }
  float want0 = 0;
  for (int r = 0; r < W; ++r) want0 += value(r, 0);
  EXPECT_EQ(summed[0], want0 * static_cast<float>(W));
}

// Byte counters: each call adds this rank's send-buffer bytes.
inline void check_stats(Communicator& c) {
  const size_t W = static_cast<size_t>(c.size()), n = 100;
  std::vector<float> a(W * n, 1.0f), b(W * n);
  std::vector<char> bytes(37);
  c.reset_stats();
  c.all_gather(a.data(), b.data(), n);
  c.all_gather(a.data(), b.data(), n);
  c.all_reduce(a.data(), n);
  c.reduce_scatter(a.data(), b.data(), n);
  c.broadcast(bytes.data(), bytes.size(), 0);
  const CommStats& s = c.stats();
  EXPECT_EQ(s.all_gather_calls, 2u);
  EXPECT_EQ(s.all_gather_bytes, 2 * n * sizeof(float));
  EXPECT_EQ(s.all_reduce_calls, 1u);
  EXPECT_EQ(s.all_reduce_bytes, n * sizeof(float));
  EXPECT_EQ(s.reduce_scatter_calls, 1u);
  EXPECT_EQ(s.reduce_scatter_bytes, W * n * sizeof(float));
  EXPECT_EQ(s.broadcast_calls, 1u);
  EXPECT_EQ(s.broadcast_bytes, 37u);
  c.reset_stats();
  EXPECT_EQ(c.stats().all_gather_bytes, 0u);
}

// Even/odd ranks in two groups, ranked in reverse by key; the last rank of an
// odd-sized group opts out with a negative color.
inline void check_split(Communicator& c) {
  const int W = c.size(), me = c.rank();
  const bool out = W > 2 && me == W - 1;
  auto sub = c.split(out ? -1 : me % 2, /*key=*/-me);
  if (out) {
    EXPECT_EQ(sub, nullptr);
    return;
  }
  ASSERT_NE(sub, nullptr);
  std::vector<int> members;
  for (int r = W - 1; r >= 0; --r)
    if (r % 2 == me % 2 && !(W > 2 && r == W - 1)) members.push_back(r);  // ascending key = descending rank
  EXPECT_EQ(sub->size(), static_cast<int>(members.size()));
  EXPECT_EQ(members.at(static_cast<size_t>(sub->rank())), me);
  EXPECT_EQ(sub->name(), c.name());
  std::vector<float> x = {static_cast<float>(me)}, all(members.size());
  sub->all_gather(x.data(), all.data(), 1);
  for (size_t i = 0; i < members.size(); ++i) EXPECT_EQ(all[i], static_cast<float>(members[i]));
  EXPECT_EQ(sub->stats().all_gather_calls, 1u);  // its own counters
}

// Every rank must end with the same bits (replicated parameters must not drift
// apart), and the same inputs must give the same bits again.
inline void check_all_reduce_identical_on_every_rank(Communicator& c) {
  const int W = c.size(), me = c.rank();
  const size_t n = 4099;
  std::vector<float> buf(n), again(n);
  for (size_t i = 0; i < n; ++i) buf[i] = again[i] = rough_value(me, i);
  c.all_reduce(buf.data(), n);
  c.all_reduce(again.data(), n);
  EXPECT_EQ(0, std::memcmp(buf.data(), again.data(), n * sizeof(float))) << "rank " << me;
  std::vector<float> all(static_cast<size_t>(W) * n);
  c.all_gather(buf.data(), all.data(), n);
  for (int r = 0; r < W; ++r)
    EXPECT_EQ(0, std::memcmp(all.data() + static_cast<size_t>(r) * n, buf.data(), n * sizeof(float)))
        << "rank " << r << " differs from rank " << me;
}

// ---- dtypes other than f32 ----------------------------------------------------------

// bf16 bits of small integers, -30..30: every partial sum over <= 4 ranks
// stays within bf16's exact integers (|x| <= 256), so the sums are exact in
// any order and with rounding after every step.
inline uint16_t bf16_value(int rank, size_t i) {
  return f32_to_bf16(static_cast<float>(static_cast<int>((static_cast<size_t>(rank) * 7 + i) % 61) - 30));
}
// Integers past float's 24 bits (exact in f64 up to 2^53): a sum taken in
// float would lose the low bits.
inline double f64_value(int rank, size_t i) {
  return std::ldexp(static_cast<double>(rank + 1), 40) + static_cast<double>(i % 1009) - 500.0;
}
// Any byte, per (rank, byte index): all_gather is a byte move, NaN bit
// patterns included.
inline unsigned char byte_value(int rank, size_t j) {
  return static_cast<unsigned char>((j * 2654435761u + static_cast<size_t>(rank) * 40503u) >> 7);
}

inline const DType kGatheredDTypes[] = {DType::BF16, DType::F64, DType::F8E4M3, DType::U16, DType::I32, DType::U64};

inline void check_all_gather_dtypes(Communicator& c) {
  const int W = c.size(), me = c.rank();
  for (DType t : kGatheredDTypes) {
    const size_t es = dtype_size(t);
    for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{1000}}) {
      const size_t bytes = n * es;
      std::vector<unsigned char> send(bytes), recv(static_cast<size_t>(W) * bytes, 0xEE), want(recv.size());
      for (size_t j = 0; j < bytes; ++j) send[j] = byte_value(me, j);
      for (int r = 0; r < W; ++r)
        for (size_t j = 0; j < bytes; ++j) want[static_cast<size_t>(r) * bytes + j] = byte_value(r, j);
      c.all_gather(send.data(), recv.data(), n, t);
      EXPECT_EQ(recv, want) << "all_gather of " << dtype_name(t) << " count " << n << " rank " << me;
      std::vector<unsigned char> inplace(recv.size(), 0xEE);
      std::copy(send.begin(), send.end(), inplace.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(me) * bytes));
      c.all_gather(inplace.data() + static_cast<size_t>(me) * bytes, inplace.data(), n, t);
      EXPECT_EQ(inplace, want) << "in-place all_gather of " << dtype_name(t) << " count " << n;
    }
  }
}

inline void check_all_reduce_dtypes(Communicator& c) {
  const int W = c.size(), me = c.rank();
  for (size_t n : kCounts) {
    std::vector<uint16_t> h(n), h_want(n);
    std::vector<double> d(n), d_want(n, 0.0);
    for (size_t i = 0; i < n; ++i) {
      h[i] = bf16_value(me, i);
      d[i] = f64_value(me, i);
      float s = 0;
      for (int r = 0; r < W; ++r) {
        s += bf16_to_f32(bf16_value(r, i));
        d_want[i] += f64_value(r, i);
      }
      h_want[i] = f32_to_bf16(s);
    }
    c.all_reduce(h.data(), n, DType::BF16);
    c.all_reduce(d.data(), n, DType::F64);
    EXPECT_EQ(h, h_want) << "bf16 all_reduce count " << n << " rank " << me;
    EXPECT_EQ(d, d_want) << "f64 all_reduce count " << n << " rank " << me;
  }
}

inline void check_reduce_scatter_dtypes(Communicator& c) {
  const int W = c.size(), me = c.rank();
  for (size_t n : kCounts) {
    const size_t total = static_cast<size_t>(W) * n;
    std::vector<uint16_t> h(total), h_recv(n, 0xFFFF), h_want(n);
    std::vector<double> d(total), d_recv(n, -1.0), d_want(n, 0.0);
    for (size_t j = 0; j < total; ++j) {
      h[j] = bf16_value(me, j);
      d[j] = f64_value(me, j);
    }
    for (size_t i = 0; i < n; ++i) {
      const size_t j = static_cast<size_t>(me) * n + i;
      float s = 0;
      for (int r = 0; r < W; ++r) {
        s += bf16_to_f32(bf16_value(r, j));
        d_want[i] += f64_value(r, j);
      }
      h_want[i] = f32_to_bf16(s);
    }
    c.reduce_scatter(h.data(), h_recv.data(), n, DType::BF16);
    c.reduce_scatter(d.data(), d_recv.data(), n, DType::F64);
    EXPECT_EQ(h_recv, h_want) << "bf16 reduce_scatter count " << n << " rank " << me;
    EXPECT_EQ(d_recv, d_want) << "f64 reduce_scatter count " << n << " rank " << me;
    c.reduce_scatter(h.data(), h.data(), n, DType::BF16);
    c.reduce_scatter(d.data(), d.data(), n, DType::F64);
    EXPECT_TRUE(std::equal(h_want.begin(), h_want.end(), h.begin())) << "in-place bf16 reduce_scatter count " << n;
    EXPECT_TRUE(std::equal(d_want.begin(), d_want.end(), d.begin())) << "in-place f64 reduce_scatter count " << n;
  }
}

// Sums of other dtypes are refused on every rank alike (before any traffic,
// so no rank is left waiting), naming the collective and the dtype, and
// count nothing.
inline void check_dtype_refusal(Communicator& c) {
  const size_t W = static_cast<size_t>(c.size()), n = 4;
  std::vector<uint64_t> buf(W * n);  // room for n elements of any dtype per rank
  c.reset_stats();
  for (DType t : {DType::I32, DType::U16, DType::U32, DType::I64, DType::U64, DType::F8E4M3, DType::F8E5M2}) {
    const std::string name = dtype_name(t);
    try {
      c.all_reduce(buf.data(), n, t);
      ADD_FAILURE() << "all_reduce of " << name << " was not refused";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("all_reduce of " + name + " is not supported"), std::string::npos) << what;
    }
    try {
      c.reduce_scatter(buf.data(), buf.data(), n, t);
      ADD_FAILURE() << "reduce_scatter of " << name << " was not refused";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("reduce_scatter of " + name + " is not supported"), std::string::npos) << what;
    }
  }
  EXPECT_EQ(c.stats().all_reduce_calls, 0u);
  EXPECT_EQ(c.stats().reduce_scatter_calls, 0u);
  c.barrier();  // the group still works
}

// Byte counters use the dtype's size.
inline void check_stats_dtypes(Communicator& c) {
  const size_t W = static_cast<size_t>(c.size()), n = 100;
  std::vector<uint16_t> h(W * n, 0), h_out(W * n);
  std::vector<double> d(W * n, 1.0), d_out(W * n);
  c.reset_stats();
  c.all_gather(h.data(), h_out.data(), n, DType::BF16);
  c.all_gather(d.data(), d_out.data(), n, DType::F64);
  c.all_reduce(h.data(), n, DType::BF16);
  c.all_reduce(d.data(), n, DType::F64);
  c.reduce_scatter(h.data(), h_out.data(), n, DType::BF16);
  const CommStats& s = c.stats();
  EXPECT_EQ(s.all_gather_calls, 2u);
  EXPECT_EQ(s.all_gather_bytes, n * 2 + n * 8);
  EXPECT_EQ(s.all_reduce_calls, 2u);
  EXPECT_EQ(s.all_reduce_bytes, n * 2 + n * 8);
  EXPECT_EQ(s.reduce_scatter_calls, 1u);
  EXPECT_EQ(s.reduce_scatter_bytes, W * n * 2);
  c.reset_stats();
}

inline void run_all(Communicator& c) {
  check_all_gather(c);
  check_all_reduce(c);
  check_reduce_scatter(c);
  check_all_reduce_f64(c);
  check_broadcast(c);
  check_requests_in_flight(c);
  check_stats(c);
  check_split(c);
  check_all_reduce_identical_on_every_rank(c);
  check_all_gather_dtypes(c);
  check_all_reduce_dtypes(c);
  check_reduce_scatter_dtypes(c);
  check_dtype_refusal(c);
  check_stats_dtypes(c);
}

}  // namespace lintrain::conformance
