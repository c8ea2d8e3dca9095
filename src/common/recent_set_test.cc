#include "common/recent_set.h"

#include <string>

#include <gtest/gtest.h>

namespace gotlscap {
namespace {

TEST(RecentSet, RemembersOnlyTheLastInsertions) {
  RecentSet<std::string> s(3);
  EXPECT_TRUE(s.insert("a"));
  EXPECT_FALSE(s.insert("a"));  // a duplicate is not an insertion: "a" stays the oldest
  EXPECT_TRUE(s.insert("b"));
  EXPECT_TRUE(s.insert("c"));
  EXPECT_TRUE(s.insert("d"));  // "a" forgotten
  EXPECT_FALSE(s.contains("a"));
  EXPECT_TRUE(s.contains("b") && s.contains("c") && s.contains("d"));
  EXPECT_EQ(s.size(), 3u);
  EXPECT_TRUE(s.insert("a"));  // seen again as new
  EXPECT_FALSE(s.contains("b"));
}

TEST(RecentSet, StaysBounded) {
  RecentSet<int> s(100);
  for (int i = 0; i < 100000; i++) s.insert(i);
  EXPECT_EQ(s.size(), 100u);
  EXPECT_TRUE(s.contains(99999));
  EXPECT_FALSE(s.contains(99899));
}

}  // namespace
}  // namespace gotlscap
