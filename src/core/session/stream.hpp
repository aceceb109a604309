// Byte rings addressed by 64-bit stream offsets: the retention (send) buffer and the receive
// buffer of a session.
//
// Theory of operation. Each direction of a session is one byte stream numbered from 0. The sender
// keeps every byte from the peer's last acknowledged "consumed" offset up to what its application
// wrote; that is what a resume may need again. The end of stream (FIN) occupies one position,
// exactly as in TCP, so "consumed == fin_offset + 1" means the peer's application saw the end.
//
// Memory. Rings allocate lazily and grow by doubling up to the cap, so an idle session holds no
// buffer. Their storage then follows the working set rather than the high-water mark: the session
// calls trim() about once per heartbeat, and a ring that stayed at most a quarter full for
// kQuietTrimsToShrink calls in a row shrinks to twice the highest fill it saw meanwhile (one that
// saw no byte at all and is empty is freed). A burst (the backlog of an outage, a resend) therefore
// costs memory while it is outstanding and gives it back a few seconds after it was acknowledged,
// and a busy stream keeps twice its working set, so it does not shrink and regrow from one
// heartbeat to the next. Blocks from kMappedRingMin up are mapped from the kernel directly, so
// freeing one returns its pages at once (glibc would serve them from its arena after the first
// large free raised its mmap threshold, and keep them).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "core/common.hpp"

namespace roam::core {

// Uninitialised storage for a ring: from the heap below kMappedRingMin, mapped from the kernel
// (anonymous, private) from there up, falling back to the heap if a mapping is refused
// (vm.max_map_count). Throws std::bad_alloc when neither gives memory, as std::vector did.
class RingStorage {
 public:
  RingStorage() = default;
  explicit RingStorage(std::size_t n);
  ~RingStorage() { release(); }
  RingStorage(RingStorage&& o) noexcept { swap(o); }
  RingStorage& operator=(RingStorage&& o) noexcept {
    RingStorage(std::move(o)).swap(*this);
    return *this;
  }
  RingStorage(const RingStorage&) = delete;
  RingStorage& operator=(const RingStorage&) = delete;

  std::uint8_t* data() const { return p_; }
  std::size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  bool mapped() const { return mapped_; }
  void swap(RingStorage& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    std::swap(mapped_, o.mapped_);
  }

 private:
  void release();
  std::uint8_t* p_ = nullptr;
  std::size_t n_ = 0;
  bool mapped_ = false;
};

// Rings start small (an idle or interactive session needs little) and double as bulk arrives.
inline constexpr std::size_t kInitialRing = 4 * 1024;
// From this size up ring storage is mapped directly (see the top of the file). 128 KiB is glibc's
// own initial threshold; below it a block costs less than a mapping (a VMA, a syscall, page
// faults on reuse), and the blocks are small enough that the arena's reuse of them is harmless.
inline constexpr std::size_t kMappedRingMin = 128 * 1024;
// AddressSanitizer does not watch mappings made with mmap: its builds keep every ring on the heap,
// so an overrun of a large ring is still caught.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kRingsMapped = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kRingsMapped = false;
#else
inline constexpr bool kRingsMapped = true;
#endif
#else
inline constexpr bool kRingsMapped = true;
#endif
// Consecutive trim() calls (about one per heartbeat) a ring must stay at most a quarter full
// before it shrinks: a stream whose load dips for a second keeps its storage.
inline constexpr int kQuietTrimsToShrink = 3;

// A ring of bytes covering stream offsets [begin, end). Capacity grows on demand up to `cap` and
// shrinks back to the working set (trim()).
class ByteRing {
 public:
  explicit ByteRing(std::size_t cap) : cap_(cap) {}

  std::uint64_t begin() const { return begin_; }
  std::uint64_t end() const { return end_; }
  std::size_t size() const { return static_cast<std::size_t>(end_ - begin_); }
  std::size_t cap() const { return cap_; }
  std::size_t allocated() const { return buf_.size(); }

  // Largest contiguous writable region at end(), growing storage if it helps; empty when full.
  MutBytes free_span();
  void push(std::size_t n) {
    end_ += n;
    peak_ = std::max(peak_, size());
  }
  // Contiguous readable bytes starting at stream offset `from` (begin() <= from <= end()).
  Bytes data_at(std::uint64_t from) const;
  // Drops bytes below `to` (begin() <= to <= end()).
  void pop_to(std::uint64_t to);
  // Housekeeping, about once per heartbeat while the stream is in use: frees the storage of an
  // empty ring that saw no byte since the last call; shrinks one that stayed at most a quarter full
  // for kQuietTrimsToShrink calls in a row to the smallest size (the initial size doubled) of at
  // least twice the highest fill seen in those calls. Offsets and bytes are unchanged; data_at()
  // and free_span() results taken before the call are invalidated when it reallocates.
  void trim();
  // Frees storage when empty (a closed session keeps no buffer).
  void shrink_if_empty();
  // Restarts an empty ring at a new offset (used when a stream starts elsewhere than 0).
  void reset_at(std::uint64_t offset) {
    begin_ = end_ = offset;
  }

 private:
  void grow(std::size_t want);
  // Moves the live bytes into new storage of `n` bytes (n >= size(); 0 frees it).
  void relocate(std::size_t n);

  std::size_t cap_;
  RingStorage buf_;
  std::uint64_t begin_ = 0;
  std::uint64_t end_ = 0;
  std::size_t peak_ = 0;        // highest size() after a push since the last trim()
  std::size_t held_ = 0;        // size() at the last trim()
  std::size_t quiet_peak_ = 0;  // highest size() over the current run of quiet trims
  int quiet_trims_ = 0;         // consecutive trim() calls that found the ring at most 1/4 full
};

// The sending half: retention buffer plus FIN.
class SendStream {
 public:
  explicit SendStream(std::size_t cap) : ring_(cap) {}

  // Application side -------------------------------------------------------------------------
  // Contiguous space the application may fill directly (zero-copy send path); empty when the
  // retention buffer is full, when `unsent_limit` bytes are already waiting to be sent
  // (backpressure), or after shutdown.
  MutBytes write_space();
  // Caps bytes written but not yet sent. The retention ring then grows only to what is really
  // unacknowledged plus this, and stays small enough to be copied from cache: like
  // TCP_NOTSENT_LOWAT one level up. 0 means no limit beyond the cap.
  void set_unsent_limit(std::size_t n) { unsent_limit_ = n; }
  void commit(std::size_t n);
  // Whether write_space() would offer room, without allocating the ring to find out.
  bool has_space() const {
    if (fin_offset_ || ring_.size() >= ring_.cap()) return false;
    const std::uint64_t unsent = ring_.end() > sent_ ? ring_.end() - sent_ : 0;
    return unsent_limit_ == 0 || unsent < unsent_limit_;
  }
  // Copies as much of `in` as fits; returns the count.
  std::size_t write(Bytes in);
  // Queues the end of stream after everything written so far.
  void shutdown();
  bool is_shutdown() const { return fin_offset_.has_value(); }

  // Transmit side ----------------------------------------------------------------------------
  std::uint64_t written() const { return ring_.end(); }
  std::uint64_t sent() const { return sent_; }
  std::uint64_t acked() const { return acked_; }
  std::optional<std::uint64_t> fin_offset() const { return fin_offset_; }
  // Unsent data bytes from sent(), contiguous, at most `max`.
  Bytes unsent(std::size_t max) const;
  // Retained bytes from stream offset `from`, contiguous, at most `max`.
  Bytes data_at(std::uint64_t from, std::size_t max) const {
    Bytes b = ring_.data_at(from);
    return b.first(std::min(max, b.size()));
  }
  void mark_sent(std::size_t n) { sent_ += n; }
  bool fin_pending() const { return fin_offset_ && sent_ == *fin_offset_; }
  void mark_fin_sent() { sent_ = *fin_offset_ + 1; }
  // Everything (data and FIN) acknowledged by the peer's application.
  bool all_acked() const { return fin_offset_ && acked_ == *fin_offset_ + 1; }

  // Peer acknowledgements --------------------------------------------------------------------
  // The peer's application has consumed everything below `consumed` (FIN counts one). kProtocol
  // if it acknowledges what we never wrote. Going backwards is ignored (reordered heartbeat).
  Result<void> on_ack(std::uint64_t consumed);
  // Resume: the peer holds everything below `received`; resend from there. kRetentionLost if we
  // no longer hold it, kProtocol if it is beyond what we wrote.
  Result<void> rewind_to(std::uint64_t received);

  std::size_t retained() const { return ring_.size(); }
  std::size_t allocated() const { return ring_.allocated(); }
  // ByteRing::trim (periodic) and ByteRing::shrink_if_empty (at close).
  void trim_memory() { ring_.trim(); }
  void release_memory() { ring_.shrink_if_empty(); }

 private:
  ByteRing ring_;
  std::size_t unsent_limit_ = 0;
  std::uint64_t sent_ = 0;
  std::uint64_t acked_ = 0;
  std::optional<std::uint64_t> fin_offset_;
};

// The receiving half.
class RecvStream {
 public:
  explicit RecvStream(std::size_t cap) : ring_(cap) {}

  // Transport side ---------------------------------------------------------------------------
  // Where the next DATA payload bytes go (at most `max`). Empty only if the peer overran credit.
  MutBytes space(std::size_t max);
  void commit(std::size_t n) { ring_.push(n); }
  // Copies payload bytes (used for the few bytes read together with a frame header).
  // kProtocol if they do not fit (the peer broke the credit rule).
  Result<void> append(Bytes in);
  // End of stream at `offset`; kProtocol if it does not match what was received.
  Result<void> on_fin(std::uint64_t offset);
  // Offset up to which the session holds the stream (the resume position; FIN counts one).
  std::uint64_t received() const { return ring_.end() + (fin_ ? 1 : 0); }

  // Application side -------------------------------------------------------------------------
  Bytes readable() const { return ring_.data_at(ring_.begin()); }
  void consume(std::size_t n);
  // True once every byte before the peer's FIN has been consumed.
  bool at_eof() const { return fin_ && ring_.size() == 0; }
  bool fin_received() const { return fin_; }
  // The application took note of the end of stream; it now counts as consumed.
  void consume_eof() {
    if (at_eof()) eof_consumed_ = true;
  }
  // Offset the application has consumed (what ACK frames carry).
  std::uint64_t consumed() const { return ring_.begin() + (eof_consumed_ ? 1 : 0); }
  bool eof_consumed() const { return eof_consumed_; }
  std::size_t buffered() const { return ring_.size(); }
  std::size_t allocated() const { return ring_.allocated(); }
  // ByteRing::trim (periodic) and ByteRing::shrink_if_empty (at close).
  void trim_memory() { ring_.trim(); }
  void release_memory() { ring_.shrink_if_empty(); }

 private:
  ByteRing ring_;
  bool fin_ = false;
  bool eof_consumed_ = false;
};

}  // namespace roam::core
