// The interfaces of a `gotlscap pcap` run: the -i names, or with `-i any` every interface of this
// network namespace, including those created later (rtnetlink) and forgetting removed ones. Each
// attached interface gets its own Interface Description Block (name, link type, a comment naming
// its network namespace); its packets refer to that block.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "output/pcapng_writer.h"
#include "packet/net_interface.h"
#include "packet/packet_capture.h"

namespace gotlscap::cli {

class PcapInterfaces {
 public:
  struct Known {
    packet::NetInterface itf;
    uint32_t id = 0;  // pcapng interface id
  };
  // Checks the -i names ("any" among them: every interface) and the filter against each link type,
  // before anything is opened or attached. With `any`, interfaces of link types gotlscap cannot
  // capture (or the filter does not fit) are skipped.
  static Result<std::unique_ptr<PcapInterfaces>> Resolve(const std::vector<std::string>& names,
                                                         const std::string& filter, uint32_t snaplen,
                                                         packet::Direction dir);
  // Writes the IDBs and attaches; then `Poll` follows new and removed interfaces (with `any`).
  Result<int> Start(packet::PacketCapture& pc, output::PcapngWriter& out);
  void Poll();
  // Stops following (before the hooks are removed).
  void Stop() { watcher_.reset(); }
  const Known* Find(uint32_t ifindex) const;
  // "lo,eth0" or "any (lo, eth0, ...)".
  std::string Describe() const;
  bool any() const { return any_; }

 private:
  PcapInterfaces() = default;
  bool Add(const packet::NetInterface& itf, bool report);
  void AddByName(const std::string& name, uint32_t ifindex, bool report);
  void Remove(uint32_t ifindex);
  void Resync();

  bool any_ = false;
  std::string filter_, netns_;
  uint32_t snaplen_ = 0;
  packet::Direction dir_ = packet::Direction::kInOut;
  std::vector<packet::NetInterface> initial_;
  std::map<uint32_t, Known> known_;  // by ifindex
  std::unique_ptr<packet::LinkWatcher> watcher_;
  packet::PacketCapture* pc_ = nullptr;
  output::PcapngWriter* out_ = nullptr;
};

}  // namespace gotlscap::cli
