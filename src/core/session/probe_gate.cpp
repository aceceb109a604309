#include "core/session/probe_gate.hpp"

#include <utility>

namespace roam::core {

ProbeGate::ProbeGate(Duration spacing, Duration reachable_for, std::size_t max_in_flight)
    : spacing_(spacing), reachable_for_(reachable_for), max_in_flight_(max_in_flight) {}

bool ProbeGate::admit(const std::string& key, Waiter w, std::function<void()> wake, Time now) {
  Entry& e = keys_[key];
  if (now < e.reachable_until) {
    e.waiting.erase(w);
    ++e.in_flight;
    return true;
  }
  if ((!e.probed || now - e.last_probe >= spacing_) && e.in_flight < max_in_flight_) {
    e.waiting.erase(w);
    e.probed = true;
    e.last_probe = now;
    ++e.in_flight;
    return true;
  }
  e.waiting[w] = std::move(wake);
  return false;
}

void ProbeGate::done(const std::string& key, bool connected, Time now) {
  auto it = keys_.find(key);
  if (it == keys_.end()) return;
  Entry& e = it->second;
  if (e.in_flight > 0) --e.in_flight;
  if (connected) {
    e.reachable_until = now + reachable_for_;
    auto waiting = std::move(e.waiting);
    e.waiting.clear();
    for (auto& [w, wake] : waiting)
      if (wake) wake();
  }
  tidy(it, now);
}

void ProbeGate::forget(Waiter w) {
  for (auto& [key, e] : keys_) e.waiting.erase(w);
}

void ProbeGate::tidy(std::map<std::string, Entry>::iterator it, Time now) {
  // An entry that nobody waits on, with nothing in flight, is kept only while it still says
  // something: reachable, or a probe too recent to allow the next. Bounded by the keys in use.
  const Entry& e = it->second;
  if (e.in_flight == 0 && e.waiting.empty() && now >= e.reachable_until &&
      (!e.probed || now - e.last_probe >= spacing_))
    keys_.erase(it);
}

std::size_t ProbeGate::in_flight(const std::string& key) const {
  auto it = keys_.find(key);
  return it == keys_.end() ? 0 : it->second.in_flight;
}

std::size_t ProbeGate::waiting(const std::string& key) const {
  auto it = keys_.find(key);
  return it == keys_.end() ? 0 : it->second.waiting.size();
}

}  // namespace roam::core
