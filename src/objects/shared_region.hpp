// objects/shared_region.hpp — the memory a synchronisation object (or a Value, an Array)
// lives in: an anonymous shared mapping that forked children share, or the bytes of a
// named SharedMemory segment that unrelated processes open.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "ipckit/shared_memory.hpp"
#include "objects/sync_layout.hpp"
#include "sys/mapping.hpp"

namespace ipckit::detail {

class SharedRegion {
 public:
  using Init = std::function<void(std::byte* object)>;

  // Zeroed anonymous memory holding a new object of `kind` and `size` bytes: `init`
  // fills it (the header excepted), then it is published.
  static std::shared_ptr<SharedRegion> anonymous(ObjectKind kind, std::size_t size, const Init& init);
  // A new named segment holding a new object. Throws FileExistsError.
  static std::shared_ptr<SharedRegion> create(std::string_view name, ObjectKind kind, std::size_t size,
                                              const Init& init);
  // An existing named object; waits (bounded) for its creator to publish it. Throws
  // FileNotFoundError, or ValueError when it holds another kind of object.
  static std::shared_ptr<SharedRegion> open(std::string_view name, ObjectKind kind);
  // Either, race-free between processes doing the same.
  static std::shared_ptr<SharedRegion> open_or_create(std::string_view name, ObjectKind kind,
                                                      std::size_t size, const Init& init);

  std::byte* object() const noexcept { return object_; }
  // Bytes of the object, as its creator published them.
  std::size_t size() const noexcept;
  // Removes the segment's name (ValueError for an anonymous region).
  void unlink();
  const std::string& name() const noexcept { return name_; }
  // "Lock 'orders'" / "anonymous Lock", for messages.
  std::string describe() const;

 private:
  SharedRegion() = default;
  void publish(ObjectKind kind, std::size_t size);
  // Waits for the creator to publish, then checks kind, version and sizes against the
  // `available` bytes.
  void await(ObjectKind kind, std::size_t available);

  sys::Mapping anonymous_;
  SharedMemory segment_;
  std::byte* object_ = nullptr;
  std::string name_;
  ObjectKind kind_ = ObjectKind::Lock;
};

// How a handle comes by its object.
enum class How { kAnonymous, kCreate, kOpen, kOpenOrCreate };

// The region for `how` (`size` and `init` serve only to create).
std::shared_ptr<SharedRegion> make_region(How how, std::string_view name, ObjectKind kind, std::size_t size,
                                          const SharedRegion::Init& init);

}  // namespace ipckit::detail
