#include "core/session/stream.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <new>

namespace roam::core {

// --- RingStorage ---------------------------------------------------------------------------

RingStorage::RingStorage(std::size_t n) {
  if (n == 0) return;
  if (kRingsMapped && n >= kMappedRingMin) {
    void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
      p_ = static_cast<std::uint8_t*>(p);
      n_ = n;
      mapped_ = true;
      return;
    }
  }
  p_ = static_cast<std::uint8_t*>(::operator new(n));  // throws std::bad_alloc
  n_ = n;
}

void RingStorage::release() {
  if (!p_) return;
  if (mapped_)
    ::munmap(p_, n_);
  else
    ::operator delete(p_);
  p_ = nullptr;
  n_ = 0;
  mapped_ = false;
}

// --- ByteRing ------------------------------------------------------------------------------

void ByteRing::relocate(std::size_t n) {
  RingStorage next(n);
  // Linearise the live bytes at their new positions (offset % n).
  for (std::uint64_t off = begin_; off < end_;) {
    Bytes chunk = data_at(off);
    const std::size_t dst = static_cast<std::size_t>(off % n);
    const std::size_t first = std::min(chunk.size(), n - dst);
    std::memcpy(next.data() + dst, chunk.data(), first);
    std::memcpy(next.data(), chunk.data() + first, chunk.size() - first);
    off += chunk.size();
  }
  buf_.swap(next);
}

void ByteRing::grow(std::size_t want) {
  std::size_t n = std::max(buf_.size(), std::min(kInitialRing, cap_));
  while (n < want && n < cap_) n = std::min(cap_, n * 2);
  if (n != buf_.size()) relocate(n);
}

void ByteRing::trim() {
  const std::size_t have = buf_.size();
  // The most the ring held since the last call: at its start, at any push, and now.
  const std::size_t peak = std::max({peak_, size(), held_});
  const bool idle = peak_ == 0 && size() == 0;  // no byte arrived, none is left
  peak_ = 0;
  held_ = size();
  if (have == 0) return;
  if (idle) {
    relocate(0);
    quiet_trims_ = 0;
    quiet_peak_ = 0;
    return;
  }
  if (peak > have / 4) {  // busy: the storage is in use
    quiet_trims_ = 0;
    quiet_peak_ = 0;
    return;
  }
  quiet_peak_ = std::max(quiet_peak_, peak);
  if (++quiet_trims_ < kQuietTrimsToShrink) return;
  std::size_t n = std::min(kInitialRing, cap_);
  while (n < 2 * quiet_peak_ && n < cap_) n = std::min(cap_, n * 2);
  quiet_trims_ = 0;
  quiet_peak_ = 0;
  if (n < have) relocate(n);
}

MutBytes ByteRing::free_span() {
  if (size() >= cap_) return {};
  if (buf_.size() <= size()) grow(size() + 1);
  const std::size_t n = buf_.size();
  const std::size_t free_total = std::min(cap_, n) - size();
  const std::size_t pos = static_cast<std::size_t>(end_ % n);
  const std::size_t contiguous = std::min(free_total, n - pos);
  return MutBytes(buf_.data() + pos, contiguous);
}

Bytes ByteRing::data_at(std::uint64_t from) const {
  if (from >= end_ || buf_.empty()) return {};
  const std::size_t n = buf_.size();
  const std::size_t pos = static_cast<std::size_t>(from % n);
  const std::size_t avail = static_cast<std::size_t>(end_ - from);
  return Bytes(buf_.data() + pos, std::min(avail, n - pos));
}

void ByteRing::pop_to(std::uint64_t to) {
  begin_ = std::clamp(to, begin_, end_);
}

void ByteRing::shrink_if_empty() {
  if (begin_ == end_ && !buf_.empty()) relocate(0);
}

// --- SendStream ----------------------------------------------------------------------------

MutBytes SendStream::write_space() {
  if (fin_offset_) return {};
  if (unsent_limit_ == 0) return ring_.free_span();
  const std::uint64_t unsent = ring_.end() > sent_ ? ring_.end() - sent_ : 0;
  if (unsent >= unsent_limit_) return {};
  MutBytes s = ring_.free_span();
  return s.first(std::min<std::size_t>(s.size(), unsent_limit_ - static_cast<std::size_t>(unsent)));
}

void SendStream::commit(std::size_t n) { ring_.push(n); }

std::size_t SendStream::write(Bytes in) {
  std::size_t done = 0;
  while (done < in.size()) {
    MutBytes space = write_space();
    if (space.empty()) break;
    const std::size_t n = std::min(space.size(), in.size() - done);
    std::memcpy(space.data(), in.data() + done, n);
    commit(n);
    done += n;
  }
  return done;
}

void SendStream::shutdown() {
  if (!fin_offset_) fin_offset_ = ring_.end();
}

Bytes SendStream::unsent(std::size_t max) const {
  Bytes b = ring_.data_at(sent_);
  return b.first(std::min(max, b.size()));
}

Result<void> SendStream::on_ack(std::uint64_t consumed) {
  const std::uint64_t limit = fin_offset_ ? *fin_offset_ + 1 : ring_.end();
  if (consumed > limit || consumed > std::max(sent_, acked_))
    return fail(Errc::kProtocol, "peer acknowledged bytes never sent");
  if (consumed <= acked_) return {};
  acked_ = consumed;
  ring_.pop_to(std::min(consumed, ring_.end()));
  return {};
}

Result<void> SendStream::rewind_to(std::uint64_t received) {
  const std::uint64_t limit = fin_offset_ ? *fin_offset_ + 1 : ring_.end();
  if (received > limit) return fail(Errc::kProtocol, "peer claims bytes never written");
  if (received < acked_)
    return fail(Errc::kRetentionLost, "peer resumes from " + std::to_string(received) +
                                          " but retention starts at " + std::to_string(acked_));
  sent_ = received;
  return {};
}

// --- RecvStream ----------------------------------------------------------------------------

MutBytes RecvStream::space(std::size_t max) {
  MutBytes s = ring_.free_span();
  return s.first(std::min(max, s.size()));
}

Result<void> RecvStream::append(Bytes in) {
  if (fin_ && !in.empty()) return fail(Errc::kProtocol, "DATA after the end of stream");
  std::size_t done = 0;
  while (done < in.size()) {
    MutBytes s = ring_.free_span();
    if (s.empty()) return fail(Errc::kProtocol, "peer sent beyond its credit");
    const std::size_t n = std::min(s.size(), in.size() - done);
    std::memcpy(s.data(), in.data() + done, n);
    ring_.push(n);
    done += n;
  }
  return {};
}

Result<void> RecvStream::on_fin(std::uint64_t offset) {
  if (fin_) return {};  // a resent FIN
  if (offset != ring_.end())
    return fail(Errc::kProtocol, "FIN at " + std::to_string(offset) + " but received " +
                                     std::to_string(ring_.end()));
  fin_ = true;
  return {};
}

void RecvStream::consume(std::size_t n) {
  ring_.pop_to(ring_.begin() + n);
}

}  // namespace roam::core
