// Multi-query associative recall (MQAR), the synthetic recall task of Zoology
// (Arora et al. 2023, arXiv:2312.04927), following its reference generator
// zoology/data/multiquery_ar.py. With V = vocab_size, P = data.mqar_pairs,
// Q = data.mqar_queries (0 means P) and T = seq_len, one sequence is:
//
//   positions [0, 2P)   k1 v1 k2 v2 ... kP vP   keys distinct, drawn from
//                       [1, V/2); values distinct, drawn from [V/2, V);
//                       token 0 is never a key (the reference's pad id)
//   positions [2P, T)   R = T - 2P slots: Q of them hold a query, i.e. one of
//                       the keys again, whose target is that key's value;
//                       all other slots hold noise, uniform over [0, V)
//                       (the reference's random_non_queries = True)
//   targets             -1 (kIgnoreTarget) everywhere except query slots
//
// Which slots hold queries: Q distinct slots drawn without replacement with
// probability proportional to (s + 1)^(a - 1), s = slot offset from 2P,
// a = 0.01 (the reference's power_a: like repeated bigrams in real text, a
// query tends to follow soon after the context). Draws are made with the
// Efraimidis-Spirakis keys log(u_s) * (s + 1)^(1 - a), which give the same
// distribution, in the same draw order, as successive weighted draws
// (numpy's choice(replace=False, p=...)) in O(R log Q).
// Which key each draw asks for: as in the reference, the j-th draw asks for
// the j-th queried key in context order. For Q <= P the queried keys are a
// uniform random subset of size Q (all keys when Q = P); for Q > P every key
// is asked once and the remaining Q - P draws ask uniformly random keys.
//
// Differences from the reference, which needs T >= 4P (queries only on even
// slots, exactly P of them): queries may sit on any slot and Q is free, so
// T >= 2P + Q suffices. Every sequence is generated from its own Rng stream;
// train and valid use different streams.
#pragma once

#include <memory>
#include <vector>

#include "runtime/data/data_loader.h"

namespace lintrain {

class MqarLoader : public DataLoader {
 public:
  // Throws ConfigError when T < 2P + Q or V < 2P + 2 (not enough distinct
  // keys in [1, V/2) or values in [V/2, V)).
  MqarLoader(int pairs, int queries, int vocab_size, Split split, int B, int T, uint64_t seed, int dp_rank,
             int dp_size);

  std::string name() const override;
  int pairs() const { return pairs_; }
  int queries() const { return queries_; }
  int key_begin() const { return 1; }                 // keys are in [key_begin, key_end)
  int key_end() const { return vocab_size_ / 2; }
  int value_begin() const { return vocab_size_ / 2; }  // values are in [value_begin, vocab_size)

  // The power-law exponent a of the query-slot distribution.
  static constexpr double kPowerA = 0.01;

 protected:
  void fill_sequence(uint64_t index, int32_t* inputs, int32_t* targets) const override;

 private:
  int pairs_, queries_, vocab_size_;
  std::vector<double> slot_scale_;  // (R) (s + 1)^(1 - a)
};

std::unique_ptr<DataLoader> make_mqar_loader(const DataConfig& cfg, Split split, int vocab_size, int B, int T,
                                             uint64_t seed, int dp_rank, int dp_size);

}  // namespace lintrain
