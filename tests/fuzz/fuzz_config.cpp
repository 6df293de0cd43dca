// libFuzzer target: the bytes as the text of a run file, through the YAML
// parser, the schema and the cross-key validator (lintrain::parse_run_config).
// A bad run file must end in lintrain::Error (ConfigError, or IoError for a
// data path the validator checks on disk); any other exception escaping, a
// crash, undefined behaviour, a hang or a huge allocation is a finding.
//
// A run file that validates must also survive what every run does with it:
// its resolved YAML (config.yaml, recorded in each checkpoint) parses back
// as a recorded config and resolves to the same text. That check is on
// unless LINTRAIN_FUZZ_ROUNDTRIP=0.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "runtime/config/config.h"
#include "runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  lintrain::RunConfig cfg;
  try {
    cfg = lintrain::parse_run_config(text, {}, "fuzz.yaml");
  } catch (const lintrain::Error&) {
    return 0;  // expected: a clear error for a bad run file
  }
  static const bool roundtrip = [] {
    const char* v = std::getenv("LINTRAIN_FUZZ_ROUNDTRIP");
    return !(v && std::string(v) == "0");
  }();
  if (!roundtrip) return 0;
  const std::string resolved = lintrain::config_to_yaml(cfg);
  std::string again;
  try {
    again = lintrain::config_to_yaml(lintrain::parse_recorded_run_config(resolved, "fuzz.yaml"));
  } catch (const lintrain::Error& e) {
    std::fprintf(stderr, "fuzz_config: the resolved config of a valid run file does not parse back: %s\n%s\n",
                 e.what(), resolved.c_str());
    std::abort();
  }
  if (again != resolved) {
    std::fprintf(stderr, "fuzz_config: the resolved config changes when read back:\n--- first\n%s\n--- again\n%s\n",
                 resolved.c_str(), again.c_str());
    std::abort();
  }
  return 0;
}
