// Bounds-checked big-endian reader and writer.
//
// Contract (STYLE.md §1): a Reader never reads past its end; every getter returns false when the
// bytes are not there and leaves the cursor unchanged. Fields are assembled with shifts, never by
// casting pointers. A Writer checks room first and reports overflow through ok().
#pragma once

#include <cstdint>
#include <cstring>
#include <span>

namespace roam::core::wire {

class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> in) : in_(in) {}

  std::size_t remaining() const { return in_.size() - pos_; }
  std::size_t position() const { return pos_; }

  bool u8(std::uint8_t& v) { return uint_n(1, v); }
  bool u16(std::uint16_t& v) { return uint_n(2, v); }
  bool u24(std::uint32_t& v) { return uint_n(3, v); }
  bool u32(std::uint32_t& v) { return uint_n(4, v); }
  bool u64(std::uint64_t& v) { return uint_n(8, v); }
  bool bytes(std::span<std::uint8_t> out) {
    if (remaining() < out.size()) return false;
    if (!out.empty()) std::memcpy(out.data(), in_.data() + pos_, out.size());
    pos_ += out.size();
    return true;
  }
  bool view(std::size_t n, std::span<const std::uint8_t>& out) {
    if (remaining() < n) return false;
    out = in_.subspan(pos_, n);
    pos_ += n;
    return true;
  }

 private:
  template <typename T>
  bool uint_n(std::size_t n, T& v) {
    if (remaining() < n) return false;
    T acc = 0;
    for (std::size_t i = 0; i < n; ++i) acc = static_cast<T>((acc << 8) | in_[pos_ + i]);
    v = acc;
    pos_ += n;
    return true;
  }

  std::span<const std::uint8_t> in_;
  std::size_t pos_ = 0;
};

class Writer {
 public:
  explicit Writer(std::span<std::uint8_t> out) : out_(out) {}

  bool ok() const { return ok_; }
  std::size_t size() const { return pos_; }

  void u8(std::uint8_t v) { uint_n(1, v); }
  void u16(std::uint16_t v) { uint_n(2, v); }
  void u24(std::uint32_t v) { uint_n(3, v); }
  void u32(std::uint32_t v) { uint_n(4, v); }
  void u64(std::uint64_t v) { uint_n(8, v); }
  void bytes(std::span<const std::uint8_t> in) {
    if (!room(in.size())) return;
    if (!in.empty()) std::memcpy(out_.data() + pos_, in.data(), in.size());
    pos_ += in.size();
  }

 private:
  bool room(std::size_t n) {
    if (!ok_ || out_.size() - pos_ < n) {
      ok_ = false;
      return false;
    }
    return true;
  }
  template <typename T>
  void uint_n(std::size_t n, T v) {
    if (!room(n)) return;
    for (std::size_t i = 0; i < n; ++i)
      out_[pos_ + i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(v) >> (8 * (n - 1 - i)));
    pos_ += n;
  }

  std::span<std::uint8_t> out_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace roam::core::wire
