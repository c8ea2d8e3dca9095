// Test helper: a writer's output in a temporary file, read back as lines.
#pragma once

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "output/event_writer.h"

namespace gotlscap::testing {

struct CapturedOutput {
  FILE* f = tmpfile();
  ~CapturedOutput() { fclose(f); }
  // Flushes `w` and returns every line written so far (empty ones too).
  std::vector<std::string> Lines(output::EventWriter& w) {
    EXPECT_TRUE(w.Flush());
    std::string all;
    rewind(f);
    char buf[65536];
    for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) all.append(buf, n);
    std::vector<std::string> out;
    std::istringstream in(all);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
};

}  // namespace gotlscap::testing
