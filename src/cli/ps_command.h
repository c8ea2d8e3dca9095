// `gotlscap ps [--all] [--json]`: the running Go processes whole-host capture would attach to
// (issue 7). Default: Go processes with crypto/tls (attachable); --all adds the Go processes that
// are not (no crypto/tls, or an analysis error), marked TLS=no with the reason. Non-Go processes
// are never listed. Needs no eBPF; without root, other users' processes are not visible.
#pragma once

namespace CLI {
class App;
}

namespace gotlscap::cli {

struct PsOptions {
  bool all = false;
  bool json = false;
};

void RegisterPs(CLI::App& app, PsOptions& opts);
int RunPs(const PsOptions& opts);  // returns the process exit code (0)

}  // namespace gotlscap::cli
