// ipckit/value.hpp — Value<T> and Array<T>: typed data in shared memory, each with a Lock,
// as Python's multiprocessing.Value and Array (and RawValue, RawArray without the lock).
//
//   ipckit::Value<std::int64_t> counter(0);             // made before start(): shared
//   ipckit::Process worker([&] {
//     for (int i = 0; i < 1000; ++i) counter.fetch_add(1);     // atomic, no lock at all
//     { auto c = counter.access(); *c += 1; }                 // or under the lock
//   });
//
// T must be trivially copyable (it is copied between processes as bytes). Three ways in:
//   - get() / set(): under the lock (if the object has one), like Python's .value;
//   - access(): an accessor that holds the lock for its lifetime, for read-modify-write;
//   - raw(): the bytes themselves, no lock (Python's RawValue), for code that
//     synchronises otherwise;
// and for integral T, atomic operations on the value (fetch_add, load, store, exchange,
// compare_exchange): a fast path Python lacks, needing no lock at all.
//
// Sharing, naming and lifetime are those of the objects in sync.hpp: the default
// constructors make anonymous memory that children started afterwards share; create/open
// make or open a named segment (shared_memory.hpp). Layout: docs/formats/sync.md.
//
// Crash safety: the lock is a Lock (see sync.hpp): a holder that dies inside access()
// leaves it inconsistent, and get/set/access then throw OwnerDied until someone calls
// get_lock().recover(repair). Atomic operations cannot be torn by a death.
#pragma once

#include <atomic>
#include <cstddef>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

#include <string>

#include "ipckit/error.hpp"
#include "ipckit/sync.hpp"

namespace ipckit {
namespace detail {

// The part of Value and Array that does not depend on T: a shared region holding a
// header, an optional Lock and `count` elements of `element_size` bytes.
class ValueCore {
 public:
  struct Shape {
    std::size_t element_size;
    std::size_t alignment;
    std::size_t count;
    bool array;
  };
  // `initial`: count * element_size bytes to copy in, or nullptr for zeroes.
  ValueCore(const Shape& shape, bool with_lock, const void* initial);
  static ValueCore create(std::string_view name, const Shape& shape, bool with_lock, const void* initial);
  static ValueCore open(std::string_view name, const Shape& shape);

  std::byte* data() const noexcept { return data_; }
  std::size_t count() const noexcept { return count_; }
  Lock* lock() const noexcept { return lock_.get(); }
  Lock& require_lock() const;
  const std::string& name() const noexcept;
  void unlink();

 private:
  ValueCore(std::shared_ptr<SharedRegion> region, const Shape& shape);
  std::shared_ptr<SharedRegion> region_;
  std::unique_ptr<Lock> lock_;
  std::byte* data_ = nullptr;
  std::size_t count_ = 0;
};

}  // namespace detail

// Holds a lock and gives access to what it guards; the lock is released on destruction.
template <class Ref>
class Locked {
 public:
  Locked(Lock* lock, Ref ref) : lock_(lock), ref_(ref) {
    if (lock_ != nullptr) lock_->acquire();
  }
  Locked(const Locked&) = delete;
  Locked& operator=(const Locked&) = delete;
  ~Locked() {
    if (lock_ != nullptr) lock_->release();
  }
  Ref operator*() const noexcept { return ref_; }
  auto* operator->() const noexcept { return &ref_; }

 private:
  Lock* lock_;
  Ref ref_;
};

template <class T>
class Value {
  static_assert(std::is_trivially_copyable_v<T>, "Value<T> needs a trivially copyable T");

 public:
  explicit Value(T initial = T{}, bool lock = true) : core_(shape(), lock, &initial) {}
  static Value create(std::string_view name, T initial = T{}, bool lock = true) {
    return Value(detail::ValueCore::create(name, shape(), lock, &initial));
  }
  static Value open(std::string_view name) { return Value(detail::ValueCore::open(name, shape())); }

  T get() const {
    Locked<T&> held(core_.lock(), raw());
    return *held;
  }
  void set(const T& value) {
    Locked<T&> held(core_.lock(), raw());
    *held = value;
  }
  // Holds the lock (none for a Value made without one) while the accessor lives.
  Locked<T&> access() { return Locked<T&>(core_.lock(), raw()); }
  T& raw() const noexcept { return *reinterpret_cast<T*>(core_.data()); }
  // Throws ValueError for a Value made without a lock.
  Lock& get_lock() const { return core_.require_lock(); }
  const std::string& name() const noexcept { return core_.name(); }
  // Removes the name of a named object (see sync.hpp).
  void unlink() { core_.unlink(); }

  // Atomic operations (integral T), sequentially consistent; no lock involved.
  T load() const requires std::is_integral_v<T> { return ref().load(); }
  void store(T v) requires std::is_integral_v<T> { ref().store(v); }
  T fetch_add(T v) requires std::is_integral_v<T> { return ref().fetch_add(v); }
  T fetch_sub(T v) requires std::is_integral_v<T> { return ref().fetch_sub(v); }
  T exchange(T v) requires std::is_integral_v<T> { return ref().exchange(v); }
  bool compare_exchange(T& expected, T desired) requires std::is_integral_v<T> {
    return ref().compare_exchange_strong(expected, desired);
  }

 private:
  explicit Value(detail::ValueCore core) : core_(std::move(core)) {}
  static constexpr detail::ValueCore::Shape shape() { return {sizeof(T), alignof(T), 1, false}; }
  std::atomic_ref<T> ref() const requires std::is_integral_v<T> { return std::atomic_ref<T>(raw()); }
  detail::ValueCore core_;
};

template <class T>
class Array {
  static_assert(std::is_trivially_copyable_v<T>, "Array<T> needs a trivially copyable T");

 public:
  // n zero-initialised elements.
  explicit Array(std::size_t n, bool lock = true) : core_(shape(n), lock, nullptr) {}
  explicit Array(std::span<const T> values, bool lock = true) : core_(shape(values.size()), lock, values.data()) {}
  Array(std::initializer_list<T> values, bool lock = true)
      : Array(std::span<const T>(values.begin(), values.size()), lock) {}
  static Array create(std::string_view name, std::size_t n, bool lock = true) {
    return Array(detail::ValueCore::create(name, shape(n), lock, nullptr));
  }
  static Array create(std::string_view name, std::span<const T> values, bool lock = true) {
    return Array(detail::ValueCore::create(name, shape(values.size()), lock, values.data()));
  }
  static Array open(std::string_view name) { return Array(detail::ValueCore::open(name, shape(0))); }

  std::size_t size() const noexcept { return core_.count(); }
  // One element under the lock; ValueError when i is out of range.
  T get(std::size_t i) const {
    check(i);
    Locked<std::span<T>> held(core_.lock(), raw());
    return (*held)[i];
  }
  void set(std::size_t i, const T& value) {
    check(i);
    Locked<std::span<T>> held(core_.lock(), raw());
    (*held)[i] = value;
  }
  // All elements, copied under the lock (Python's list(arr) / arr[:]).
  std::vector<T> to_vector() const {
    Locked<std::span<T>> held(core_.lock(), raw());
    return std::vector<T>((*held).begin(), (*held).end());
  }
  Locked<std::span<T>> access() { return Locked<std::span<T>>(core_.lock(), raw()); }
  std::span<T> raw() const noexcept { return {reinterpret_cast<T*>(core_.data()), core_.count()}; }
  Lock& get_lock() const { return core_.require_lock(); }
  const std::string& name() const noexcept { return core_.name(); }
  // Removes the name of a named object (see sync.hpp).
  void unlink() { core_.unlink(); }

  T fetch_add(std::size_t i, T v) requires std::is_integral_v<T> {
    check(i);
    return std::atomic_ref<T>(raw()[i]).fetch_add(v);
  }
  T load(std::size_t i) const requires std::is_integral_v<T> {
    check(i);
    return std::atomic_ref<T>(raw()[i]).load();
  }
  void store(std::size_t i, T v) requires std::is_integral_v<T> {
    check(i);
    std::atomic_ref<T>(raw()[i]).store(v);
  }

 private:
  explicit Array(detail::ValueCore core) : core_(std::move(core)) {}
  static constexpr detail::ValueCore::Shape shape(std::size_t n) { return {sizeof(T), alignof(T), n, true}; }
  void check(std::size_t i) const {
    if (i >= size())
      throw ValueError("Array index " + std::to_string(i) + " out of range (size " + std::to_string(size()) + ")");
  }
  detail::ValueCore core_;
};

}  // namespace ipckit
