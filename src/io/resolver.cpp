#include "io/resolver.hpp"

namespace roam::io {

Resolver::Resolver(Loop& loop, unsigned threads) : loop_(loop) {
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
}

Resolver::~Resolver() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    jobs_.clear();
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  *alive_ = false;
}

Resolver::Id Resolver::resolve(Endpoint ep, Callback done) {
  const Id id = next_++;
  callbacks_[id] = std::move(done);
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(Job{id, std::move(ep)});
  }
  cv_.notify_one();
  return id;
}

void Resolver::cancel(Id id) { callbacks_.erase(id); }

void Resolver::work() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
      if (stop_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    auto result = std::make_shared<core::Result<std::vector<SockAddr>>>(io::resolve(job.ep, false));
    std::weak_ptr<bool> alive = alive_;
    loop_.post([this, alive, id = job.id, result] {
      auto a = alive.lock();
      if (!a || !*a) return;
      auto it = callbacks_.find(id);
      if (it == callbacks_.end()) return;  // cancelled
      Callback cb = std::move(it->second);
      callbacks_.erase(it);
      cb(std::move(*result));
    });
  }
}

}  // namespace roam::io
