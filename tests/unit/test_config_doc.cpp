// The README's options table is exactly what `lintrain config --doc` prints,
// so the documentation cannot drift from the schema.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "runtime/config/config.h"

TEST(ConfigDoc, ReadmeTableMatchesSchema) {
  std::ifstream f(std::string(LINTRAIN_TEST_DIR) + "/../README.md");
  ASSERT_TRUE(f) << "README.md not found";
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string readme = ss.str();
  const std::string begin = "<!-- config-table:begin -->\n", end = "<!-- config-table:end -->";
  const size_t b = readme.find(begin), e = readme.find(end);
  ASSERT_NE(b, std::string::npos);
  ASSERT_NE(e, std::string::npos);
  const std::string table = readme.substr(b + begin.size(), e - b - begin.size());
  EXPECT_EQ(table, lintrain::config_reference_markdown())
      << "README.md's option table is stale: regenerate it with `build/lintrain config --doc`";
}
