// RecentSet: a set that remembers only its last `capacity` insertions (oldest forgotten first).
// For deduplication of events that repeat close together (the same TLS secret reported by both
// ends of a connection, or by two probes), without growing with every connection ever seen.
#pragma once

#include <cstddef>
#include <deque>
#include <set>
#include <utility>

namespace gotlscap {

template <typename T>
class RecentSet {
 public:
  explicit RecentSet(size_t capacity = 16384) : capacity_(capacity ? capacity : 1) {}
  bool contains(const T& v) const { return set_.count(v) > 0; }
  // True when `v` was not there (and is now).
  bool insert(T v) {
    auto [it, inserted] = set_.insert(std::move(v));
    if (!inserted) return false;
    order_.push_back(it);
    if (order_.size() > capacity_) {
      set_.erase(order_.front());
      order_.pop_front();
    }
    return true;
  }
  size_t size() const { return set_.size(); }

 private:
  size_t capacity_;
  std::set<T> set_;
  std::deque<typename std::set<T>::iterator> order_;
};

}  // namespace gotlscap
