// consumer_bench: gotlscap's user-space consumer without the kernel. Feeds synthetic ring-buffer
// records (the chunks the BPF side emits) through EventAssembler and the real JSON/text writers
// into /dev/null, and times each encoder alone (base64: the AVX2 path and the portable one).
// It tells how many MB/s and events/s one core can consume, i.e. where bench/run-capture-bench.sh
// starts losing events. Usage: consumer_bench [--min-time SEC]
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "bpf/gotls_events.h"
#include "capture/event_assembler.h"
#include "output/encoding.h"
#include "output/event_writer.h"

namespace {

using Clock = std::chrono::steady_clock;
double g_min_time = 1.0;

// Runs fn repeatedly for at least g_min_time; returns seconds per call.
double TimePerCall(const std::function<void()>& fn) {
  fn();  // warm-up
  uint64_t n = 0;
  auto t0 = Clock::now();
  double el = 0;
  do {
    fn();
    n++;
    el = std::chrono::duration<double>(Clock::now() - t0).count();
  } while (el < g_min_time);
  return el / double(n);
}

std::string Payload(size_t n, uint32_t x) {  // the test programs' LCG: binary, like their bodies
  std::string s(n, '\0');
  for (auto& c : s) {
    x = x * 1664525 + 1013904223;
    c = char(x >> 24);
  }
  return s;
}

std::string TextPayload(size_t n) {  // printable HTTP-like text
  static const char kLine[] = "GET /api/v1/items?id=12345 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n";
  std::string s;
  while (s.size() < n) s += kLine;
  s.resize(n);
  return s;
}

// Records exactly as gotls.bpf.c builds them: header + chunk, chunks of GOTLS_CHUNK_MAX.
std::vector<std::vector<uint8_t>> Records(const std::string& payload, uint64_t call_id) {
  std::vector<std::vector<uint8_t>> out;
  const size_t n = payload.size();
  for (size_t off = 0; off < n || off == 0; off += GOTLS_CHUNK_MAX) {
    size_t len = std::min<size_t>(GOTLS_CHUNK_MAX, n - off);
    gotls_data_event h{};
    h.call_id = call_id;
    h.ts_ns = 1000 + call_id;
    h.total_len = n;
    h.offset = off;
    h.conn_ptr = 0xc000123400;
    h.sock_ptr = 0xffff888012345678;
    h.fd = 7;
    h.pid = 4242;
    h.tid = 4243;
    h.family = 2;
    h.lport = 8443;
    h.rport = 50000;
    const uint8_t lo[4] = {127, 0, 0, 1};
    std::memcpy(h.laddr, lo, 4);
    std::memcpy(h.raddr, lo, 4);
    std::memcpy(h.comm, "server", 7);
    h.chunk_len = uint32_t(len);
    h.flags = (off == 0 ? GOTLS_CHUNK_FIRST : 0) | (off + len >= n ? GOTLS_CHUNK_LAST : 0);
    // The record size the BPF side reserves: 512, 4096 or 16384 bytes of data.
    size_t cap = n <= 512 ? 512 : n <= 4096 ? 4096 : GOTLS_CHUNK_MAX;
    std::vector<uint8_t> r(sizeof h + cap);
    std::memcpy(r.data(), &h, sizeof h);
    std::memcpy(r.data() + sizeof h, payload.data() + off, len);
    out.push_back(std::move(r));
    if (n == 0) break;
  }
  return out;
}

void Row(const char* what, size_t bytes_per_call, double s) {
  fmt::print("  {:<52} {:>9.2f} us/call {:>9.0f} MB/s {:>10.0f} calls/s\n", what, s * 1e6,
             double(bytes_per_call) / s / 1e6, 1.0 / s);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; i++)
    if (std::string(argv[i]) == "--min-time" && i + 1 < argc) g_min_time = std::atof(argv[++i]);
  using namespace gotlscap;
  FILE* devnull = fopen("/dev/null", "w");
  static char buf[1 << 20];
  setvbuf(devnull, buf, _IOFBF, sizeof buf);

  fmt::print("encoders alone (payload -> one fmt::memory_buffer, cleared each call, as the writers do)\n");
  for (size_t n : {size_t(100), size_t(16384), size_t(1000000)}) {
    for (int text = 0; text < 2; text++) {
      std::string p = text ? TextPayload(n) : Payload(n, 1);
      const char* kind = text ? "text" : "binary";
      fmt::memory_buffer b;
      Row(fmt::format("AppendBase64         {:>7} B {:<6}", n, kind).c_str(), n, TimePerCall([&] {
            b.clear();
            output::AppendBase64(b, p);
          }));
      Row(fmt::format("AppendBase64Portable {:>7} B {:<6}", n, kind).c_str(), n, TimePerCall([&] {
            b.clear();
            output::AppendBase64Portable(b, p);
          }));
      Row(fmt::format("AppendEscaped        {:>7} B {:<6}", n, kind).c_str(), n, TimePerCall([&] {
            b.clear();
            output::AppendEscaped(b, p);
          }));
      if (text)
        Row(fmt::format("AppendJsonString     {:>7} B {:<6}", n, kind).c_str(), n, TimePerCall([&] {
              b.clear();
              output::AppendJsonString(b, p);
            }));
    }
  }

  fmt::print("\nwhole consumer: records -> EventAssembler -> writer -> /dev/null (binary payloads)\n");
  for (size_t n : {size_t(100), size_t(16384), size_t(1000000)}) {
    auto recs = Records(Payload(n, 1), 1);
    for (const char* fmtname : {"none", "json", "text"}) {
      std::unique_ptr<output::EventWriter> w;
      if (std::string(fmtname) == "json") w = output::MakeJsonWriter(devnull);
      if (std::string(fmtname) == "text") w = output::MakeTextWriter(devnull, false);
      capture::EventAssembler a([&](capture::DataEvent&& ev) { if (w) w->Write(ev); }, 0);
      uint64_t id = 1;
      double s = TimePerCall([&] {
        // a fresh call id per event, as in a real run (the tid is the same)
        for (auto& r : recs) {
          reinterpret_cast<gotls_data_event*>(r.data())->call_id = id;
          a.OnRecord(r);
        }
        id++;
      });
      Row(fmt::format("assembler + {:<4} {:>7} B event ({} records)", fmtname, n, recs.size()).c_str(), n, s);
    }
  }
  fclose(devnull);
  return 0;
}
