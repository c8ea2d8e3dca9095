// The writers' cgroup and container fields (README "Containers"): JSON "cgroup" and "container"
// on data, close, http, secret and notice events, only what is known; text headers
// " container=<12 hex>". Kept apart from writers_test.cc.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "output/event_writer.h"
#include "testing/captured_output.h"

namespace gotlscap::output {
namespace {

const std::string kId = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

std::vector<std::string> NonEmpty(std::vector<std::string> lines) {
  std::erase(lines, std::string());
  return lines;
}

std::shared_ptr<const CgroupInfo> Cg(const std::string& path) {
  auto c = std::make_shared<CgroupInfo>();
  c->path = path;
  c->container = ContainerOf(path);
  return c;
}

// One event of each type, all with `cg` (null: unknown).
void WriteAll(EventWriter& w, const std::shared_ptr<const CgroupInfo>& cg) {
  capture::DataEvent ev;
  ev.pid = 5;
  ev.comm = "app";
  ev.payload = "hi";
  ev.len = 2;
  ev.conn = {1, 3, "127.0.0.1:1", "127.0.0.1:2", cg};
  w.Write(ev);
  capture::DataEvent end = ev;
  end.payload.clear();
  end.len = 0;
  end.end = capture::ConnEnd::kClose;
  w.Write(end);
  decode::DecodedMessage d;
  d.pid = 5;
  d.comm = "app";
  d.conn = ev.conn;
  d.msg.proto = "HTTP/1.1";
  d.msg.kind = decode::HttpMessage::Kind::kRequest;
  d.msg.method = "GET";
  d.msg.path = "/";
  w.WriteHttp(d);
  w.WriteNotice(5, "app", ev.conn, "odd");
  capture::SecretEvent s;
  s.pid = 5;
  s.comm = "app";
  s.label = "CLIENT_RANDOM";
  s.client_random = std::string(32, 'r');
  s.secret = std::string(48, 's');
  s.cgroup = cg;
  w.WriteSecret(s);
}

TEST(JsonWriterContainer, EveryEventTypeCarriesCgroupAndContainer) {
  const std::string pod = "4f1c2a3b-5d6e-4f70-8a9b-0c1d2e3f4a5b";
  const std::string path = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod4f1c2a3b_5d6e_4f70_8a9b_"
                           "0c1d2e3f4a5b.slice/cri-containerd-" + kId + ".scope";
  testing::CapturedOutput c;
  auto w = MakeJsonWriter(c.f);
  WriteAll(*w, Cg(path));
  auto lines = NonEmpty(c.Lines(*w));
  ASSERT_EQ(lines.size(), 5u);
  std::vector<std::string> types;
  for (const auto& l : lines) {
    auto j = nlohmann::json::parse(l);
    types.push_back(j["type"]);
    EXPECT_EQ(j["cgroup"], path) << l;
    EXPECT_EQ(j["container"], nlohmann::json({{"id", kId}, {"runtime", "containerd"}, {"pod_uid", pod}})) << l;
  }
  EXPECT_EQ(types, (std::vector<std::string>{"data", "close", "http", "notice", "secret"}));
}

TEST(JsonWriterContainer, OnlyWhatIsKnown) {
  testing::CapturedOutput c;
  auto w = MakeJsonWriter(c.f);
  WriteAll(*w, Cg("/user.slice/session-3.scope"));  // no container
  WriteAll(*w, Cg("/kubepods/besteffort/pod4f1c2a3b-5d6e-4f70-8a9b-0c1d2e3f4a5b/" + kId));  // no runtime
  WriteAll(*w, Cg("/docker/" + kId));                                                       // no pod
  WriteAll(*w, nullptr);                                                                    // unknown cgroup
  auto lines = NonEmpty(c.Lines(*w));
  ASSERT_EQ(lines.size(), 17u);  // 5, then 4 each: the same secret is shown once per process
  for (size_t i = 0; i < lines.size(); i++) {
    auto j = nlohmann::json::parse(lines[i]);
    const size_t group = i < 5 ? 0 : (i - 5) / 4 + 1;
    SCOPED_TRACE(lines[i]);
    switch (group) {
      case 0:
        EXPECT_EQ(j["cgroup"], "/user.slice/session-3.scope");
        EXPECT_FALSE(j.contains("container"));
        break;
      case 1:
        EXPECT_EQ(j["container"], nlohmann::json({{"id", kId}, {"pod_uid", "4f1c2a3b-5d6e-4f70-8a9b-0c1d2e3f4a5b"}}));
        break;
      case 2:
        EXPECT_EQ(j["container"], nlohmann::json({{"id", kId}, {"runtime", "docker"}}));
        break;
      default:
        EXPECT_FALSE(j.contains("cgroup"));
        EXPECT_FALSE(j.contains("container"));
    }
  }
}

TEST(TextWriterContainer, HeadersNameTheShortId) {
  testing::CapturedOutput c;
  auto w = MakeTextWriter(c.f, false);
  WriteAll(*w, Cg("/system.slice/docker-" + kId + ".scope"));
  WriteAll(*w, Cg("/user.slice/session-3.scope"));
  auto lines = NonEmpty(c.Lines(*w));
  size_t tagged = 0, untagged_headers = 0;
  for (const auto& l : lines) {
    if (l.find(" container=" + kId.substr(0, 12) + " pid 5 (app)") != std::string::npos) tagged++;
    else if (l.find(" pid 5 (app)") != std::string::npos) untagged_headers++;
    EXPECT_EQ(l.find(kId.substr(0, 13)), std::string::npos) << "only 12 digits: " << l;
  }
  EXPECT_EQ(tagged, 4u);  // data, close, http, secret headers (the notice line has no time stamp)
  EXPECT_EQ(untagged_headers, 3u);  // the second process: no container; its secret is shown once per process
}

}  // namespace
}  // namespace gotlscap::output
