#include "output/pcapng_writer.h"

#include <gtest/gtest.h>

namespace gotlscap::output {
namespace {

// tcpdump's names for -C alone (FILE, FILE1, ...) and with -W (digits enough for COUNT-1).
TEST(PcapngWriterRotation, NamesAsTcpdump) {
  EXPECT_EQ(PcapngWriter::RotatedName("f", 0, 0), "f");
  EXPECT_EQ(PcapngWriter::RotatedName("f", 1, 0), "f1");
  EXPECT_EQ(PcapngWriter::RotatedName("f", 12, 0), "f12");
  EXPECT_EQ(PcapngWriter::RotatedName("f", 0, 3), "f0");
  EXPECT_EQ(PcapngWriter::RotatedName("f", 2, 3), "f2");
  EXPECT_EQ(PcapngWriter::RotatedName("f", 0, 10), "f0");
  EXPECT_EQ(PcapngWriter::RotatedName("f", 3, 11), "f03");
  EXPECT_EQ(PcapngWriter::RotatedName("f", 0, 1), "f");
}

}  // namespace
}  // namespace gotlscap::output
