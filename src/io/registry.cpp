#include "io/registry.hpp"

#include <unistd.h>

#include <algorithm>
#include <future>
#include <memory>

#include <nlohmann/json.hpp>

#include "io/loop.hpp"
#include "io/session_driver.hpp"

namespace roam::io {
namespace {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

void Histogram::observe(double seconds) {
  std::size_t i = 0;
  while (i < kHandoverBuckets.size() && seconds > kHandoverBuckets[i]) ++i;
  ++counts[i];
  sum += seconds;
  ++count;
}

Registry::Registry() : started_(std::chrono::steady_clock::now()) {}

Registry& registry() {
  static Registry r;
  return r;
}

void Registry::set_daemon(std::string kind, std::string listen) {
  std::lock_guard<std::mutex> lk(mu_);
  kind_ = std::move(kind);
  listen_ = std::move(listen);
}

void Registry::add(const SessionDriver* d, const Loop* loop) {
  std::lock_guard<std::mutex> lk(mu_);
  drivers_[d] = loop;
  ++sessions_started_;
}

void Registry::remove(const SessionDriver* d, std::uint64_t bytes_sent, std::uint64_t bytes_received) {
  std::lock_guard<std::mutex> lk(mu_);
  if (drivers_.erase(d) == 0) return;
  ended_bytes_sent_ += bytes_sent;
  ended_bytes_received_ += bytes_received;
}

void Registry::on_handshake(bool ok) {
  std::lock_guard<std::mutex> lk(mu_);
  ++(ok ? handshakes_ok_ : handshakes_failed_);
}

void Registry::on_migrated(core::Duration took, const std::string& id) {
  const double s = std::chrono::duration<double>(took).count();
  std::lock_guard<std::mutex> lk(mu_);
  ++migrations_;
  handover_.observe(s);
  recent_.push_back(HandoverPoint{unix_now(), s, id});
  while (recent_.size() > kRecentHandovers) recent_.pop_front();
}

void Registry::on_closed(bool clean) {
  std::lock_guard<std::mutex> lk(mu_);
  ++(clean ? ended_clean_ : ended_aborted_);
}

void Registry::set_worker(unsigned index, unsigned count) {
  std::lock_guard<std::mutex> lk(mu_);
  worker_ = index;
  workers_ = count;
}

void Registry::on_handoff(bool passed) {
  std::lock_guard<std::mutex> lk(mu_);
  ++(passed ? handoffs_passed_ : handoffs_received_);
}

void Registry::on_refused(std::string_view reason) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = refusals_.find(reason);
  if (it == refusals_.end()) it = refusals_.emplace(std::string(reason), 0).first;
  ++it->second;
}

DaemonSnapshot Registry::snapshot(const Loop& loop, core::Time now) const {
  DaemonSnapshot s;
  std::lock_guard<std::mutex> lk(mu_);
  s.kind = kind_;
  s.listen = listen_;
  s.version = "0.1.0";
  s.pid = static_cast<long>(::getpid());
  s.uptime_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  s.unix_time = unix_now();
  s.sessions_started = sessions_started_;
  s.ended_clean = ended_clean_;
  s.ended_aborted = ended_aborted_;
  s.handshakes_ok = handshakes_ok_;
  s.handshakes_failed = handshakes_failed_;
  s.migrations = migrations_;
  s.bytes_sent = ended_bytes_sent_;
  s.bytes_received = ended_bytes_received_;
  s.refusals.insert(refusals_.begin(), refusals_.end());
  s.worker = worker_;
  s.workers = workers_;
  s.handoffs_passed = handoffs_passed_;
  s.handoffs_received = handoffs_received_;
  s.handover = handover_;
  s.recent.assign(recent_.begin(), recent_.end());
  for (const auto& [d, l] : drivers_) {
    if (l != &loop) continue;
    SessionInfo info = d->info(now);
    s.bytes_sent += info.bytes_sent;
    s.bytes_received += info.bytes_received;
    s.retained += info.retained;
    s.sessions.push_back(std::move(info));
  }
  std::sort(s.sessions.begin(), s.sessions.end(),
            [](const SessionInfo& a, const SessionInfo& b) { return a.age_s > b.age_s; });
  return s;
}

std::optional<DaemonSnapshot> snapshot_via_loop(Loop& loop, std::chrono::milliseconds timeout) {
  auto promise = std::make_shared<std::promise<DaemonSnapshot>>();
  auto future = promise->get_future();
  loop.post([promise, &loop] { promise->set_value(registry().snapshot(loop, boot_now())); });
  if (future.wait_for(timeout) != std::future_status::ready) return std::nullopt;
  return future.get();
}

// --- JSON ----------------------------------------------------------------------------------

nlohmann::json to_json(const DaemonSnapshot& s) {
  using nlohmann::json;
  json sessions = json::array();
  for (const auto& x : s.sessions)
    sessions.push_back({{"id", x.id},
                        {"role", x.role},
                        {"name", x.name},
                        {"peer", x.peer},
                        {"local", x.local},
                        {"remote", x.remote},
                        {"state", x.state},
                        {"bytes_sent", x.bytes_sent},
                        {"bytes_received", x.bytes_received},
                        {"retained", x.retained},
                        {"migrations", x.migrations},
                        {"last_handover_s", x.last_handover_s},
                        {"waiting_s", x.waiting_s},
                        {"waited_total_s", x.waited_total_s},
                        {"age_s", x.age_s}});
  json buckets = json::array();
  for (std::size_t i = 0; i < s.handover.counts.size(); ++i) buckets.push_back(s.handover.counts[i]);
  json recent = json::array();
  for (const auto& p : s.recent)
    recent.push_back({{"unix_time", p.unix_time}, {"seconds", p.seconds}, {"id", p.id}});
  return {{"kind", s.kind},
          {"listen", s.listen},
          {"version", s.version},
          {"pid", s.pid},
          {"uptime_s", s.uptime_s},
          {"unix_time", s.unix_time},
          {"sessions", sessions},
          {"sessions_started", s.sessions_started},
          {"ended_clean", s.ended_clean},
          {"ended_aborted", s.ended_aborted},
          {"handshakes_ok", s.handshakes_ok},
          {"handshakes_failed", s.handshakes_failed},
          {"migrations", s.migrations},
          {"bytes_sent", s.bytes_sent},
          {"bytes_received", s.bytes_received},
          {"retained", s.retained},
          {"refusals", s.refusals},
          {"handover_buckets", buckets},
          {"handover_sum_s", s.handover.sum},
          {"handover_count", s.handover.count},
          {"recent_handovers", recent},
          {"worker", s.worker},
          {"workers", s.workers},
          {"handoffs_passed", s.handoffs_passed},
          {"handoffs_received", s.handoffs_received}};
}

core::Result<DaemonSnapshot> snapshot_from_json(const nlohmann::json& j) {
  try {
    DaemonSnapshot s;
    j.at("kind").get_to(s.kind);
    j.at("listen").get_to(s.listen);
    j.at("version").get_to(s.version);
    j.at("pid").get_to(s.pid);
    j.at("uptime_s").get_to(s.uptime_s);
    j.at("unix_time").get_to(s.unix_time);
    for (const auto& x : j.at("sessions")) {
      SessionInfo i;
      x.at("id").get_to(i.id);
      x.at("role").get_to(i.role);
      x.at("name").get_to(i.name);
      x.at("peer").get_to(i.peer);
      x.at("local").get_to(i.local);
      x.at("remote").get_to(i.remote);
      x.at("state").get_to(i.state);
      x.at("bytes_sent").get_to(i.bytes_sent);
      x.at("bytes_received").get_to(i.bytes_received);
      x.at("retained").get_to(i.retained);
      x.at("migrations").get_to(i.migrations);
      x.at("last_handover_s").get_to(i.last_handover_s);
      x.at("waiting_s").get_to(i.waiting_s);
      x.at("waited_total_s").get_to(i.waited_total_s);
      x.at("age_s").get_to(i.age_s);
      s.sessions.push_back(std::move(i));
    }
    j.at("sessions_started").get_to(s.sessions_started);
    j.at("ended_clean").get_to(s.ended_clean);
    j.at("ended_aborted").get_to(s.ended_aborted);
    j.at("handshakes_ok").get_to(s.handshakes_ok);
    j.at("handshakes_failed").get_to(s.handshakes_failed);
    j.at("migrations").get_to(s.migrations);
    j.at("bytes_sent").get_to(s.bytes_sent);
    j.at("bytes_received").get_to(s.bytes_received);
    j.at("retained").get_to(s.retained);
    j.at("refusals").get_to(s.refusals);
    // Absent from daemons older than --workers.
    s.worker = j.value("worker", 0u);
    s.workers = j.value("workers", 0u);
    s.handoffs_passed = j.value("handoffs_passed", std::uint64_t{0});
    s.handoffs_received = j.value("handoffs_received", std::uint64_t{0});
    const auto& b = j.at("handover_buckets");
    if (!b.is_array() || b.size() != s.handover.counts.size())
      return core::fail(core::Errc::kMalformed, "handover_buckets: wrong number of buckets");
    for (std::size_t i = 0; i < s.handover.counts.size(); ++i) b[i].get_to(s.handover.counts[i]);
    j.at("handover_sum_s").get_to(s.handover.sum);
    j.at("handover_count").get_to(s.handover.count);
    for (const auto& p : j.at("recent_handovers"))
      s.recent.push_back(HandoverPoint{p.at("unix_time").get<double>(), p.at("seconds").get<double>(),
                                       p.at("id").get<std::string>()});
    return s;
  } catch (const nlohmann::json::exception& e) {
    return core::fail(core::Errc::kMalformed, e.what());
  }
}

}  // namespace roam::io
