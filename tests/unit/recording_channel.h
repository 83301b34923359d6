// RecordingChannel: a WorkerChannel for core tests that records what the
// core sends down one worker's stream (and why it was closed).
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "coordinator/core.h"

namespace dtrain::coordinator {

// Records what the core sends down one worker's stream.
struct RecordingChannel : WorkerChannel {
  std::mutex mu;
  std::vector<v1::CoordinatorMessage> sent;
  std::string closed;
  void Send(const v1::CoordinatorMessage& m) override {
    std::lock_guard<std::mutex> l(mu);
    sent.push_back(m);
  }
  void Close(const std::string& why) override {
    std::lock_guard<std::mutex> l(mu);
    closed = why;
  }
  std::vector<v1::Assignment> Assignments() {
    std::lock_guard<std::mutex> l(mu);
    std::vector<v1::Assignment> out;
    for (auto& m : sent)
      if (m.has_assignment()) out.push_back(m.assignment());
    return out;
  }
  int Aborts() {
    std::lock_guard<std::mutex> l(mu);
    int n = 0;
    for (auto& m : sent) n += m.has_command() && m.command().kind() == v1::Command::ABORT;
    return n;
  }
  int Count(v1::CoordinatorMessage::MsgCase c) {
    std::lock_guard<std::mutex> l(mu);
    int n = 0;
    for (auto& m : sent) n += m.msg_case() == c;
    return n;
  }
};

}  // namespace dtrain::coordinator
