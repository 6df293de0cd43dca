// Token embedding: row lookup in the table wte (V, C).
#pragma once

#include <cstdint>

namespace lintrain {

// out (N, C) = wte[tokens[n]]. Token ids are checked against V.
void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N, int C, int V);

// dwte (V, C) += scatter of dout (N, C) by token id. Deterministic: each thread
// owns a slice of the C columns and walks the tokens in order.
void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C);

}  // namespace lintrain
