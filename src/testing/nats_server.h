// Test-only: a real `nats-server -js` on 127.0.0.1 (started here, never through systemd) that can
// be SIGKILLed and restarted on the same port and store directory, and a reader that fetches
// every message a stream stored, by sequence, with the C client.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace gotlscap::testing {

inline bool NatsServerInstalled() { return access("/usr/bin/nats-server", X_OK) == 0 || system("command -v nats-server >/dev/null 2>&1") == 0; }

// A port the kernel had free a moment ago (the server binds it right after; it is reused on restart).
inline int FreeTcpPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

class NatsServer {
 public:
  // `store` is the JetStream store directory; `extra_config` lines go into a config file
  // ("max_payload: 65536", cluster blocks...).
  NatsServer(std::string store, std::string extra_config = "", int port = 0)
      : store_(std::move(store)), extra_(std::move(extra_config)), port_(port ? port : FreeTcpPort()) {}
  ~NatsServer() { Kill(); }
  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  bool running() const { return pid_ > 0; }
  const std::string& log_path() const { return log_; }

  // Starts the server and waits until JetStream answers (up to 20 s).
  bool Start() {
    const std::string conf = store_ + ".conf";
    log_ = store_ + ".log";
    {
      std::ofstream c(conf);
      c << "listen: 127.0.0.1:" << port_ << "\njetstream { store_dir: \"" << store_ << "\" }\n" << extra_ << "\n";
    }
    pid_ = fork();
    if (pid_ == 0) {
      const int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      dup2(fd, 1);
      dup2(fd, 2);
      execlp("nats-server", "nats-server", "-c", conf.c_str(), nullptr);
      _exit(127);
    }
    return WaitJetStream(std::chrono::seconds(20));
  }
  // SIGSTOP: the connection stays up but nothing is read or acknowledged (messages sent now are
  // in flight, unanswered, until a Kill makes the client resend them).
  void Pause() {
    if (pid_ > 0) kill(pid_, SIGSTOP);
  }
  // SIGKILL: no clean shutdown, no flush; what JetStream acknowledged must survive anyway.
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  bool WaitJetStream(std::chrono::seconds timeout) const {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      natsConnection* nc = nullptr;
      if (natsConnection_ConnectTo(&nc, url().c_str()) == NATS_OK) {
        jsCtx* js = nullptr;
        jsAccountInfo* ai = nullptr;
        bool ok = natsConnection_JetStream(&js, nc, nullptr) == NATS_OK &&
                  js_GetAccountInfo(&ai, js, nullptr, nullptr) == NATS_OK;
        if (ai) jsAccountInfo_Destroy(ai);
        if (js) jsCtx_Destroy(js);
        natsConnection_Destroy(nc);
        if (ok) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

 private:
  std::string store_, extra_, log_;
  int port_;
  pid_t pid_ = -1;
};

struct StoredMsg {
  uint64_t seq = 0;
  std::string subject, id, data;
};

// Every message of `stream` on the server at `url`, in stream order (empty list and *error set
// when the stream cannot be read).
inline std::vector<StoredMsg> ReadStream(const std::string& url, const std::string& stream, std::string* error) {
  std::vector<StoredMsg> out;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  jsStreamInfo* si = nullptr;
  if (natsConnection_ConnectTo(&nc, url.c_str()) != NATS_OK) {
    *error = "cannot connect to " + url;
    return out;
  }
  jsErrCode jerr{};
  if (natsConnection_JetStream(&js, nc, nullptr) != NATS_OK || js_GetStreamInfo(&si, js, stream.c_str(), nullptr, &jerr) != NATS_OK) {
    *error = "no stream " + stream + " (" + std::to_string(int(jerr)) + ")";
  } else {
    for (uint64_t seq = si->State.FirstSeq; seq && seq <= si->State.LastSeq; seq++) {
      natsMsg* m = nullptr;
      if (js_GetMsg(&m, js, stream.c_str(), seq, nullptr, &jerr) != NATS_OK) {
        *error = "cannot get message " + std::to_string(seq);
        break;
      }
      StoredMsg s;
      s.seq = seq;
      s.subject = natsMsg_GetSubject(m);
      const char* id = nullptr;
      if (natsMsgHeader_Get(m, "Nats-Msg-Id", &id) == NATS_OK && id) s.id = id;
      s.data.assign(natsMsg_GetData(m), size_t(natsMsg_GetDataLength(m)));
      natsMsg_Destroy(m);
      out.push_back(std::move(s));
    }
    jsStreamInfo_Destroy(si);
  }
  if (js) jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  return out;
}

}  // namespace gotlscap::testing
