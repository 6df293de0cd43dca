// libFuzzer target: the bytes as a safetensors file through the from-memory
// reader (lintrain::safetensors_from_memory, the same checks load_safetensors
// runs on a mapped file). A corrupt file must end in lintrain::Error; for a
// file that is accepted every tensor's bytes are read, so a tensor pointing
// outside the buffer shows up under AddressSanitizer, and every lookup by
// name must find the tensor it lists.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "runtime/error.h"
#include "runtime/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exactly sized heap copy: reading one byte past the end is reported
  // (libFuzzer's own buffer is exactly sized too, but the reader keeps this one).
  std::shared_ptr<uint8_t> copy(static_cast<uint8_t*>(std::malloc(size ? size : 1)), std::free);
  if (size) std::memcpy(copy.get(), data, size);
  try {
    const lintrain::SafeTensorFile f =
        lintrain::safetensors_from_memory("fuzz.safetensors", std::shared_ptr<const uint8_t>(copy), size);
    volatile uint8_t sink = 0;
    for (const lintrain::SafeTensor& t : f.tensors()) {
      const size_t n = t.nbytes();
      if (n > size) std::abort();  // a tensor larger than the file
      const uint8_t* p = static_cast<const uint8_t*>(t.data);
      for (size_t i = 0; i < n; ++i) sink = sink ^ p[i];
      if (&f.get(t.name) != &t) std::abort();  // the index disagrees with the list
    }
    for (const auto& [k, v] : f.metadata()) sink = sink ^ static_cast<uint8_t>(k.size() + v.size());
    (void)sink;
  } catch (const lintrain::Error&) {
    // expected: a clear error for a corrupt file
  }
  return 0;
}
