#include "packet/packet_capture.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include "capture/probes.h"
#include "packet/cbpf_to_ebpf.h"
#include "packet/pcap_filter.h"
#include "pcap.skel.h"

namespace gotlscap::packet {
namespace {

// BPF_TCX_INGRESS / BPF_TCX_EGRESS (Linux 6.6), newer than Debian 12's uapi headers.
constexpr int kTcxIngress = 46;
constexpr int kTcxEgress = 47;

uint64_t RoundUpPow2(uint64_t v) {
  uint64_t p = 4096;
  while (p < v) p <<= 1;
  return p;
}

Error LibbpfError(const char* what, int err) {
  err = err < 0 ? -err : err;
  ErrorKind kind = (err == EPERM || err == EACCES) ? ErrorKind::kPermission : ErrorKind::kInternal;
  std::string hint = kind == ErrorKind::kPermission ? " (pcap mode needs root, or CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN)" : "";
  return MakeError(kind, fmt::format("{}: {}{}", what, std::strerror(err), hint));
}

}  // namespace

Result<std::unique_ptr<PacketCapture>> PacketCapture::Open(const PacketCaptureOptions& opts, Sink sink) {
  std::unique_ptr<PacketCapture> pc(new PacketCapture());
  pc->opts_ = opts;
  pc->sink_ = std::move(sink);
  if (!capture::HasBpfPrivileges()) return LibbpfError("cannot load the packet-capture programs", EPERM);
  pc->skel_ = pcap_bpf__open();
  if (!pc->skel_) return capture::BpfLoadError(-errno);
  pc->skel_->rodata->snaplen = opts.snaplen;
  bpf_map__set_max_entries(pc->skel_->maps.packets, static_cast<uint32_t>(RoundUpPow2(opts.ringbuf_bytes)));
  if (int err = pcap_bpf__load(pc->skel_)) return capture::BpfLoadError(err);

  // Filter programs jump here on a match (see bpf/pcap.bpf.c).
  uint32_t zero = 0;
  int in_fd = bpf_program__fd(pc->skel_->progs.capture_ingress);
  int out_fd = bpf_program__fd(pc->skel_->progs.capture_egress);
  if (bpf_map__update_elem(pc->skel_->maps.ingress_jump, &zero, sizeof(zero), &in_fd, sizeof(in_fd), BPF_ANY) ||
      bpf_map__update_elem(pc->skel_->maps.egress_jump, &zero, sizeof(zero), &out_fd, sizeof(out_fd), BPF_ANY))
    return LibbpfError("cannot link the filter to the capture programs", errno);
  return pc;
}

PacketCapture::~PacketCapture() {
  DetachAll();
  if (skel_) pcap_bpf__destroy(skel_);
}

Result<int> PacketCapture::Attach(const NetInterface& itf, const std::string& filter, Direction dir) {
  ASSIGN_OR_RETURN(auto cbpf, CompilePcapFilter(filter, itf.linktype, opts_.snaplen));
  // -Q in/out: the other direction only passes TLS handshake records (IPv4; all of IPv6 TCP), so
  // that connections are still tied to their secrets by the ClientHello. PeekOnly says which.
  const std::string handshake = "(tcp[((tcp[12:1] & 0xf0) >> 2):1] = 0x16) or (ip6 and tcp)";
  ASSIGN_OR_RETURN(auto peek_cbpf, CompilePcapFilter(filter.empty() ? handshake : "(" + filter + ") and (" + handshake + ")",
                                                     itf.linktype, opts_.snaplen));
  int attached = 0;
  const int mask = static_cast<int>(dir);
  for (int point : {BPF_TC_EGRESS, BPF_TC_INGRESS}) {
    if (point == BPF_TC_INGRESS && itf.loopback) continue;
    const bool wanted = itf.loopback || (mask & static_cast<int>(point == BPF_TC_INGRESS ? Direction::kIn
                                                                                           : Direction::kOut));
    bpf_map* jump = point == BPF_TC_INGRESS ? skel_->maps.ingress_jump : skel_->maps.egress_jump;
    ASSIGN_OR_RETURN(auto insns,
                     TranslateCbpf(wanted ? cbpf : peek_cbpf, CbpfEpilogue::TailCall(bpf_map__fd(jump))));
    ASSIGN_OR_RETURN(int prog_fd, LoadFilterProgram(insns, "gotlscap_filter"));

    Hook h{itf.ifindex, point, 0, 0, prog_fd, -1};
    // tcx (kernel 6.6+): a link owned by this process, so several captures can share an
    // interface and a killed gotlscap leaves nothing attached. Older kernels: a clsact filter.
    // GOTLSCAP_TC_CLSACT=1 forces the fallback, so tests cover it on new kernels too.
    static const bool force_clsact = std::getenv("GOTLSCAP_TC_CLSACT") != nullptr;
    h.link_fd = force_clsact ? -1
                             : bpf_link_create(prog_fd, static_cast<int>(itf.ifindex),
                                               static_cast<bpf_attach_type>(point == BPF_TC_INGRESS ? kTcxIngress
                                                                                                    : kTcxEgress),
                                               nullptr);
    if (h.link_fd < 0) {
      bpf_tc_hook hook{};
      hook.sz = sizeof(hook);
      hook.ifindex = static_cast<int>(itf.ifindex);
      hook.attach_point = static_cast<bpf_tc_attach_point>(point);
      int err = bpf_tc_hook_create(&hook);  // the clsact qdisc; -EEXIST when already there
      if (err && err != -EEXIST) {
        close(prog_fd);
        return LibbpfError(fmt::format("cannot add a clsact qdisc to {}", itf.name).c_str(), err);
      }
      bpf_tc_opts topts{};
      topts.sz = sizeof(topts);
      topts.prog_fd = prog_fd;
      err = bpf_tc_attach(&hook, &topts);
      if (err) {
        close(prog_fd);
        return LibbpfError(fmt::format("cannot attach to {}", itf.name).c_str(), err);
      }
      h.handle = topts.handle;
      h.priority = topts.priority;
    }
    hooks_.push_back(h);
    ++attached;
  }
  return attached;
}

void PacketCapture::Remove(const Hook& h) {
  if (h.link_fd >= 0) {
    close(h.link_fd);  // detaches the tcx link
  } else {
    // Only our filter goes: the clsact qdisc may carry other tools' (or another gotlscap's)
    // filters, so it stays, as an empty qdisc costs nothing.
    bpf_tc_hook hook{};
    hook.sz = sizeof(hook);
    hook.ifindex = static_cast<int>(h.ifindex);
    hook.attach_point = static_cast<bpf_tc_attach_point>(h.attach_point);
    bpf_tc_opts topts{};
    topts.sz = sizeof(topts);
    topts.handle = h.handle;
    topts.priority = h.priority;
    bpf_tc_detach(&hook, &topts);
  }
  close(h.prog_fd);
}

void PacketCapture::DetachAll() {
  for (const Hook& h : hooks_) Remove(h);
  hooks_.clear();
}

void PacketCapture::Detach(uint32_t ifindex) {
  std::erase_if(hooks_, [&](const Hook& h) {
    if (h.ifindex != ifindex) return false;
    Remove(h);
    return true;
  });
}

int PacketCapture::ringbuf_fd() const { return bpf_map__fd(skel_->maps.packets); }

int PacketCapture::OnRecord(void* ctx, void* data, size_t size) {
  auto* self = static_cast<PacketCapture*>(ctx);
  if (size < sizeof(pcap_packet_event)) return 0;
  const auto* e = static_cast<const pcap_packet_event*>(data);
  RawPacket p;
  p.mono_ns = e->ts_ns;
  p.ifindex = e->ifindex;
  p.orig_len = e->orig_len;
  p.egress = e->egress != 0;
  p.vlan_present = e->vlan_present != 0;
  p.vlan_tci = e->vlan_tci;
  p.vlan_proto_be = e->vlan_proto;
  p.gso_size = e->gso_size;
  size_t n = e->cap_len;
  if (n > size - sizeof(*e)) n = size - sizeof(*e);
  p.data = std::string_view(static_cast<const char*>(data) + sizeof(*e), n);
  self->sink_(p);
  return 0;
}

PacketCounters PacketCapture::ReadCounters() const {
  PacketCounters out;
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return out;
  struct Row {
    uint64_t v[PCAP_CNT_MAX];
  };
  std::vector<Row> rows(static_cast<size_t>(ncpu));
  uint32_t zero = 0;
  if (bpf_map__lookup_elem(skel_->maps.counters, &zero, sizeof(zero), rows.data(), rows.size() * sizeof(Row), 0))
    return out;
  for (const Row& r : rows)
    for (int i = 0; i < PCAP_CNT_MAX; ++i) out.v[i] += r.v[i];
  return out;
}

}  // namespace gotlscap::packet
