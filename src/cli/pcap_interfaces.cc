#include "cli/pcap_interfaces.h"

#include <net/if.h>

#include <set>

#include <fmt/format.h>

#include "packet/packet_parse.h"
#include "packet/pcap_filter.h"

namespace gotlscap::cli {

Result<std::unique_ptr<PcapInterfaces>> PcapInterfaces::Resolve(const std::vector<std::string>& names,
                                                                const std::string& filter, uint32_t snaplen,
                                                                packet::Direction dir) {
  std::unique_ptr<PcapInterfaces> s(new PcapInterfaces());
  s->filter_ = filter;
  s->snaplen_ = snaplen;
  s->dir_ = dir;
  s->netns_ = packet::NetnsName();
  std::set<std::string> seen;
  for (const auto& name : names) s->any_ |= name == "any";
  if (s->any_) {
    // The filter must at least fit Ethernet, what nearly every interface is.
    auto compiled = packet::CompilePcapFilter(filter, packet::kLinktypeEthernet, snaplen);
    if (!compiled.ok()) return compiled.error();
  }
  std::vector<std::string> all = s->any_ ? packet::ListInterfaceNames() : names;
  for (const auto& name : all) {
    if (!seen.insert(name).second) continue;
    auto itf = packet::LookupInterface(name);
    if (!itf.ok()) {
      if (s->any_) continue;  // a link type we cannot capture, or gone already
      return itf.error();
    }
    auto compiled = packet::CompilePcapFilter(filter, itf->linktype, snaplen);
    if (!compiled.ok()) {
      if (s->any_) continue;
      return compiled.error();
    }
    s->initial_.push_back(*itf);
  }
  return s;
}

Result<int> PcapInterfaces::Start(packet::PacketCapture& pc, output::PcapngWriter& out) {
  pc_ = &pc;
  out_ = &out;
  if (any_) {
    // Subscribed before attaching: an interface created meanwhile is announced, not missed.
    auto w = packet::LinkWatcher::Open();
    if (!w.ok()) return w.error();
    watcher_ = std::move(*w);
  }
  int hooks = 0;
  for (const auto& itf : initial_) {
    auto n = pc.Attach(itf, filter_, dir_);
    if (!n.ok()) {
      if (any_) continue;  // went away meanwhile
      return n.error();
    }
    hooks += *n;
    known_[itf.ifindex] = {itf, out.AddInterface({itf.name, itf.linktype, snaplen_, "", "netns " + netns_})};
  }
  if (any_) Resync();  // what appeared between the listing and the subscription
  return hooks;
}

bool PcapInterfaces::Add(const packet::NetInterface& itf, bool report) {
  if (known_.count(itf.ifindex)) return false;
  if (!packet::CompilePcapFilter(filter_, itf.linktype, snaplen_).ok()) return false;
  auto n = pc_->Attach(itf, filter_, dir_);
  if (!n.ok()) {
    if (report) fmt::print(stderr, "gotlscap: not capturing on new interface {}: {}\n", itf.name, n.error().message);
    return false;
  }
  known_[itf.ifindex] = {itf, out_->AddInterface({itf.name, itf.linktype, snaplen_, "", "netns " + netns_})};
  if (report) fmt::print(stderr, "capturing on {} (new interface)\n", itf.name);
  return true;
}

void PcapInterfaces::AddByName(const std::string& name, uint32_t ifindex, bool report) {
  if (name.empty() || known_.count(ifindex)) return;
  auto itf = packet::LookupInterface(name);
  // The name may already stand for another interface (renamed, or moved to another namespace).
  if (!itf.ok() || itf->ifindex != ifindex) return;
  Add(*itf, report);
}

void PcapInterfaces::Remove(uint32_t ifindex) {
  auto it = known_.find(ifindex);
  if (it == known_.end()) return;
  pc_->Detach(ifindex);
  // Its IDB stays (ids are positions in the file); its index may come back as another interface.
  fmt::print(stderr, "interface {} removed\n", it->second.itf.name);
  known_.erase(it);
}

void PcapInterfaces::Resync() {
  std::set<uint32_t> present;
  for (const auto& name : packet::ListInterfaceNames()) {
    uint32_t idx = if_nametoindex(name.c_str());
    if (idx == 0) continue;
    present.insert(idx);
    AddByName(name, idx, true);
  }
  std::vector<uint32_t> gone;
  for (const auto& [idx, k] : known_)
    if (!present.count(idx)) gone.push_back(idx);
  for (uint32_t idx : gone) Remove(idx);
}

void PcapInterfaces::Poll() {
  if (!watcher_) return;
  bool overflow = false;
  auto changes = watcher_->Read(&overflow);
  for (const auto& c : changes) {
    if (c.added) AddByName(c.name, c.ifindex, true);
    else Remove(c.ifindex);
  }
  if (overflow) Resync();
  if (!changes.empty() || overflow) fflush(stderr);
}

const PcapInterfaces::Known* PcapInterfaces::Find(uint32_t ifindex) const {
  auto it = known_.find(ifindex);
  return it == known_.end() ? nullptr : &it->second;
}

std::string PcapInterfaces::Describe() const {
  std::string names;
  for (const auto& [idx, k] : known_) names += (names.empty() ? "" : any_ ? ", " : ",") + k.itf.name;
  return any_ ? fmt::format("any ({})", names) : names;
}

}  // namespace gotlscap::cli
