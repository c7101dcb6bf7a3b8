#include "objects/shared_region.hpp"

#include <chrono>
#include <cstring>

#include "sys/deadline.hpp"
#include "sys/futex.hpp"

namespace ipckit::detail {
namespace {

// How long an opener waits for the creator to finish initialising (the creator is
// between SharedMemory::create and publish: microseconds, unless it died there).
constexpr auto kPublishWait = std::chrono::seconds(2);

ObjectHeader& header_of(std::byte* object) { return *reinterpret_cast<ObjectHeader*>(object); }

// The fixed part of each kind's layout: an object claiming less is not one.
std::size_t layout_size(ObjectKind kind) {
  switch (kind) {
    case ObjectKind::Lock:
    case ObjectKind::RLock: return sizeof(LockLayout);
    case ObjectKind::Semaphore:
    case ObjectKind::BoundedSemaphore: return sizeof(Semaphore::Layout);
    case ObjectKind::Event: return sizeof(Event::Layout);
    case ObjectKind::Condition: return sizeof(Condition::Layout);
    case ObjectKind::Barrier: return sizeof(Barrier::Layout);
    case ObjectKind::Value:
    case ObjectKind::Array: return sizeof(ValueLayout);
    case ObjectKind::Queue:
    case ObjectKind::JoinableQueue: return kQueueDataOffset;
  }
  return sizeof(ObjectHeader);
}

}  // namespace

const char* kind_name(ObjectKind kind) noexcept {
  switch (kind) {
    case ObjectKind::Lock: return "Lock";
    case ObjectKind::RLock: return "RLock";
    case ObjectKind::Semaphore: return "Semaphore";
    case ObjectKind::BoundedSemaphore: return "BoundedSemaphore";
    case ObjectKind::Event: return "Event";
    case ObjectKind::Condition: return "Condition";
    case ObjectKind::Barrier: return "Barrier";
    case ObjectKind::Value: return "Value";
    case ObjectKind::Array: return "Array";
    case ObjectKind::Queue: return "Queue";
    case ObjectKind::JoinableQueue: return "JoinableQueue";
  }
  return "object";
}

std::string SharedRegion::describe() const {
  return name_.empty() ? std::string("anonymous ") + kind_name(kind_)
                       : std::string(kind_name(kind_)) + " '" + name_ + "'";
}

void SharedRegion::publish(ObjectKind kind, std::size_t size) {
  ObjectHeader& h = header_of(object_);
  h.kind = static_cast<std::uint16_t>(kind);
  h.version = kLayoutVersion;
  h.size = static_cast<std::uint32_t>(size);
  h.magic.store(kObjectMagic, std::memory_order_release);
  sys::futex_wake(h.magic, sys::kWakeAll);
}

void SharedRegion::await(ObjectKind kind, std::size_t available) {
  ObjectHeader& h = header_of(object_);
  const auto deadline = sys::Deadline::after(kPublishWait);
  while (h.magic.load(std::memory_order_acquire) != kObjectMagic) {
    if (h.magic.load(std::memory_order_relaxed) != 0)
      throw ValueError("'" + name_ + "' is not an ipckit synchronisation object (bad magic)");
    if (sys::futex_wait(h.magic, 0, deadline) == sys::FutexWait::TimedOut &&
        h.magic.load(std::memory_order_acquire) != kObjectMagic)
      throw ValueError("'" + name_ + "' was never initialised: its creator did not finish (died?)");
  }
  const auto found = static_cast<ObjectKind>(h.kind);
  const bool compatible = found == kind || (kind == ObjectKind::Semaphore && found == ObjectKind::BoundedSemaphore);
  if (!compatible)
    throw ValueError("'" + name_ + "' holds a " + kind_name(found) + ", not a " + kind_name(kind));
  if (h.version != kLayoutVersion)
    throw ValueError("'" + name_ + "' has layout version " + std::to_string(h.version) + "; this ipckit reads " +
                     std::to_string(kLayoutVersion));
  if (h.size < layout_size(found) || h.size > available)
    throw ValueError("'" + name_ + "' claims " + std::to_string(h.size) + " bytes for a " + kind_name(found) +
                     " (at least " + std::to_string(layout_size(found)) + ") in a segment of " +
                     std::to_string(available));
  kind_ = found;
}

void SharedRegion::unlink() {
  if (name_.empty()) throw ValueError("cannot unlink an " + describe() + ": it has no name");
  segment_.unlink();
}

std::shared_ptr<SharedRegion> SharedRegion::anonymous(ObjectKind kind, std::size_t size, const Init& init) {
  std::shared_ptr<SharedRegion> r(new SharedRegion);
  r->kind_ = kind;
  r->anonymous_ = sys::map_anonymous(size, std::string("anonymous ") + kind_name(kind));
  r->object_ = r->anonymous_.data();
  init(r->object_);
  r->publish(kind, size);
  return r;
}

std::shared_ptr<SharedRegion> SharedRegion::create(std::string_view name, ObjectKind kind, std::size_t size,
                                                   const Init& init) {
  std::shared_ptr<SharedRegion> r(new SharedRegion);
  r->kind_ = kind;
  r->name_ = name;
  r->segment_ = SharedMemory::create(name, size);
  r->object_ = r->segment_.buf().data();
  init(r->object_);
  r->publish(kind, size);
  return r;
}

std::shared_ptr<SharedRegion> SharedRegion::open(std::string_view name, ObjectKind kind) {
  std::shared_ptr<SharedRegion> r(new SharedRegion);
  r->kind_ = kind;
  r->name_ = name;
  r->segment_ = SharedMemory::open(name);
  if (r->segment_.size() < sizeof(ObjectHeader))
    throw ValueError("'" + r->name_ + "' is too small to hold a " + kind_name(kind));
  r->object_ = r->segment_.buf().data();
  r->await(kind, r->segment_.size());
  return r;
}

std::shared_ptr<SharedRegion> SharedRegion::open_or_create(std::string_view name, ObjectKind kind,
                                                           std::size_t size, const Init& init) {
  std::shared_ptr<SharedRegion> r(new SharedRegion);
  r->kind_ = kind;
  r->name_ = name;
  r->segment_ = SharedMemory::open_or_create(name, size);
  r->object_ = r->segment_.buf().data();
  if (r->segment_.created()) {
    init(r->object_);
    r->publish(kind, size);
  } else {
    r->await(kind, r->segment_.size());
  }
  return r;
}

std::size_t SharedRegion::size() const noexcept { return header_of(object_).size; }

std::shared_ptr<SharedRegion> make_region(How how, std::string_view name, ObjectKind kind, std::size_t size,
                                          const SharedRegion::Init& init) {
  switch (how) {
    case How::kAnonymous: return SharedRegion::anonymous(kind, size, init);
    case How::kCreate: return SharedRegion::create(name, kind, size, init);
    case How::kOpen: return SharedRegion::open(name, kind);
    case How::kOpenOrCreate: return SharedRegion::open_or_create(name, kind, size, init);
  }
  throw ValueError("unknown way to make a shared object");
}

}  // namespace ipckit::detail
