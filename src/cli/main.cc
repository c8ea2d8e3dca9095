// gotlscap: capture TLS plaintext and secrets from Go programs with eBPF.
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/ecapture_command.h"
#include "cli/exit_codes.h"
#include "cli/inspect_command.h"
#include "cli/keylog_command.h"
#include "cli/pcap_command.h"
#include "cli/ps_command.h"
#include "cli/stat_command.h"
#include "cli/text_command.h"
#include "cli/view_command.h"

int main(int argc, char** argv) {
  using namespace gotlscap::cli;
  CLI::App app{"gotlscap: capture the TLS plaintext and secrets of Go programs with eBPF", "gotlscap"};
  app.set_version_flag("--version", "gotlscap " GOTLSCAP_VERSION);
  app.require_subcommand(1);
  InspectOptions inspect;
  RegisterInspect(app, inspect);
  TextOptions text;
  RegisterText(app, text);
  KeylogOptions keylog;
  RegisterKeylog(app, keylog);
  PcapOptions pcap;
  RegisterPcap(app, pcap);
  EcaptureOptions ecapture;
  RegisterEcapture(app, ecapture);
  PsOptions ps;
  RegisterPs(app, ps);
  ViewOptions view;
  RegisterView(app, view);
  StatOptions stat;
  RegisterStat(app, stat);
  // `gotlscap text|keylog|pcap|stat [options] -- COMMAND [ARGS...]`: the words after the first `--`
  // are the command to run under capture, never options or filter words.
  std::vector<std::string> command;
  int parse_argc = argc;
  if (argc > 2 && (std::string(argv[1]) == "text" || std::string(argv[1]) == "keylog" || std::string(argv[1]) == "pcap" ||
                   std::string(argv[1]) == "stat"))
    for (int i = 2; i < argc; i++)
      if (std::string(argv[i]) == "--") {
        if (i + 1 == argc) {
          fmt::print(stderr, "gotlscap: -- must be followed by a command (see --help)\n");
          return ExitCodeFor(gotlscap::ErrorKind::kUsage);
        }
        command.assign(argv + i + 1, argv + argc);
        parse_argc = i;
        break;
      }
  text.follow.command = keylog.follow.command = pcap.follow.command = stat.follow.command = command;
  try {
    app.parse(parse_argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, not CLI11's multi-line dump; --help gives the details.
    std::string what = e.what();
    fmt::print(stderr, "gotlscap: {} (see --help)\n", what.substr(0, what.find('\n')));
    return ExitCodeFor(gotlscap::ErrorKind::kUsage);
  }
  if (app.got_subcommand("inspect")) return RunInspect(inspect);
  if (app.got_subcommand("text")) return RunText(text);
  if (app.got_subcommand("keylog")) return RunKeylog(keylog);
  if (app.got_subcommand("pcap")) return RunPcap(pcap);
  if (app.got_subcommand("gotls")) return RunEcapture(ecapture);
  if (app.got_subcommand("ps")) return RunPs(ps);
  if (app.got_subcommand("view")) return RunView(view);
  if (app.got_subcommand("stat")) return RunStat(stat);
  return ExitCodeFor(gotlscap::ErrorKind::kUsage);
}
