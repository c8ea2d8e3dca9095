#include "fleet/nats_config.h"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "fleet/nats_message.h"

namespace gotlscap::fleet {
namespace {

Error Usage(std::string msg) { return MakeError(ErrorKind::kUsage, std::move(msg)); }

std::string CheckUrl(std::string_view url) {
  std::string_view rest = url;
  if (const size_t s = rest.find("://"); s != std::string_view::npos) {
    const std::string_view scheme = rest.substr(0, s);
    if (scheme != "nats" && scheme != "tls") return "scheme must be nats:// or tls://";
    rest.remove_prefix(s + 3);
  }
  if (const size_t at = rest.rfind('@'); at != std::string_view::npos) rest.remove_prefix(at + 1);
  std::string_view host = rest, port;
  if (!rest.empty() && rest.front() == '[') {  // [IPv6]:port
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return "unclosed [";
    host = rest.substr(1, close - 1);
    rest.remove_prefix(close + 1);
    if (!rest.empty() && rest.front() != ':') return "junk after ]";
    if (!rest.empty()) {
      port = rest.substr(1);
      if (port.empty()) return "empty port";
    }
  } else if (const size_t colon = rest.find(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (port.empty()) return "empty port";
  }
  if (host.empty()) return "no host";
  for (unsigned char c : host)
    if (!std::isalnum(c) && c != '.' && c != '-' && c != '_' && c != ':') return "bad character in host";
  if (!port.empty()) {
    if (port.size() > 5) return "bad port";
    unsigned p = 0;
    for (unsigned char c : port) {
      if (!std::isdigit(c)) return "bad port";
      p = p * 10 + (c - '0');
    }
    if (p == 0 || p > 65535) return "port out of range";
  }
  return "";
}

std::string Unreadable(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::strerror(errno);
  char c;
  const ssize_t n = read(fd, &c, 1);
  const int err = errno;
  close(fd);
  if (n < 0) return std::strerror(err);
  if (n == 0) return "empty file";
  return "";
}

}  // namespace

Result<std::vector<std::string>> ParseNatsUrls(std::string_view list) {
  std::vector<std::string> out;
  while (true) {
    const size_t comma = list.find(',');
    std::string_view url = list.substr(0, comma);
    while (!url.empty() && url.front() == ' ') url.remove_prefix(1);
    while (!url.empty() && url.back() == ' ') url.remove_suffix(1);
    if (url.empty()) return Usage(fmt::format("--nats {}: empty URL in the list", list));
    if (std::string why = CheckUrl(url); !why.empty())
      return Usage(fmt::format("--nats: bad URL '{}': {} (expected nats://HOST:PORT or tls://HOST:PORT)", url, why));
    out.emplace_back(url);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

Result<bool> CheckNatsConfig(const NatsConfig& c) {
  if (c.servers.empty()) return Usage("--nats: no server URL");
  if (!ValidSubjectPrefix(c.subject_prefix))
    return Usage(fmt::format("--nats-subject '{}': not a subject prefix (tokens without spaces, '*' or '>', "
                             "separated by single dots)", c.subject_prefix));
  if (c.stream.empty() || c.stream.find_first_of(" .*>/\\\t") != std::string::npos)
    return Usage(fmt::format("--nats-stream '{}': a stream name has no spaces, '.', '*', '>', '/' or '\\'", c.stream));
  if (!c.creds_file.empty())
    if (std::string why = Unreadable(c.creds_file); !why.empty())
      return MakeError(ErrorKind::kIo, fmt::format("--nats-creds {}: cannot read: {}", c.creds_file, why));
  if (!c.tls_ca_file.empty())
    if (std::string why = Unreadable(c.tls_ca_file); !why.empty())
      return MakeError(ErrorKind::kIo, fmt::format("--nats-tls-ca {}: cannot read: {}", c.tls_ca_file, why));
  if (c.buffer_bytes == 0) return Usage("--nats-buffer-mb must be at least 1");
  if (!(c.drain_timeout_s >= 0)) return Usage("--nats-drain-timeout must be >= 0");
  return true;
}

}  // namespace gotlscap::fleet
