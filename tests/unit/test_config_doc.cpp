// The README's generated tables are exactly what the code prints, so the
// documentation cannot drift: the options table (`lintrain config --doc`) and
// the optimizer-memory table (`lintrain memory --table`).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "launch/memory_report.h"
#include "runtime/config/config.h"

namespace {
// The text between "<!-- TAG:begin -->\n" and "<!-- TAG:end -->" in README.md.
std::string readme_section(const std::string& tag) {
  std::ifstream f(std::string(LINTRAIN_TEST_DIR) + "/../README.md");
  EXPECT_TRUE(f) << "README.md not found";
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string readme = ss.str();
  const std::string begin = "<!-- " + tag + ":begin -->\n", end = "<!-- " + tag + ":end -->";
  const size_t b = readme.find(begin), e = readme.find(end);
  EXPECT_NE(b, std::string::npos) << tag;
  EXPECT_NE(e, std::string::npos) << tag;
  if (b == std::string::npos || e == std::string::npos) return "";
  return readme.substr(b + begin.size(), e - b - begin.size());
}
}  // namespace

TEST(ConfigDoc, ReadmeTableMatchesSchema) {
  EXPECT_EQ(readme_section("config-table"), lintrain::config_reference_markdown())
      << "README.md's option table is stale: regenerate it with `build/lintrain config --doc`";
}

TEST(ConfigDoc, ReadmeMemoryTableMatchesTheOptimizers) {
  EXPECT_EQ(readme_section("optim-memory"), lintrain::optimizer_memory_table())
      << "README.md's optimizer-memory table is stale: regenerate it with `build/lintrain memory --table`";
}
