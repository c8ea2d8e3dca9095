#include "decode/http_message.h"

namespace gotlscap::decode {

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

bool IsErrorResponse(const HttpMessage& m) {
  if (m.kind != HttpMessage::Kind::kResponse) return false;
  if (m.status >= 500) return true;
  // gRPC: the status travels in the trailers, or in the headers of a trailers-only response.
  for (const auto* fields : {&m.trailers, &m.headers})
    for (const auto& [name, value] : *fields)
      if (IEquals(name, "grpc-status")) return value != "0";
  return false;
}

}  // namespace gotlscap::decode
