// `gotlscap inspect [--json] BINARY`: what a capture would hook in a Go binary.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace gotlscap::cli {

struct InspectOptions {
  std::string binary;
  bool json = false;
};

void RegisterInspect(CLI::App& app, InspectOptions& opts);
int RunInspect(const InspectOptions& opts);  // returns the process exit code

}  // namespace gotlscap::cli
