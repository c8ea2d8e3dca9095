// `gotlscap view nats://HOST:PORT`: reads back what `--nats` published to JetStream and prints
// it as `gotlscap text` would (HTTP decoded), or as the JSON lines (split events joined).
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace gotlscap::cli {

struct ViewOptions {
  std::string url;
  std::string stream = "GOTLSCAP";
  std::string subject = "gotlscap";
  std::string host;
  std::string type;
  std::string since;
  bool all = false;
  bool follow = false;
  std::string format = "text";
  bool hex = false;
  bool raw = false;
};

void RegisterView(CLI::App& app, ViewOptions& opts);
int RunView(const ViewOptions& opts);

}  // namespace gotlscap::cli
