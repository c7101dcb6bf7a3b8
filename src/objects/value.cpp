// Value<T> and Array<T>: the region, its header and its lock (layout: ValueLayout in
// objects/sync_layout.hpp, docs/formats/sync.md). The typed parts are in value.hpp.
#include "ipckit/value.hpp"

#include <cstring>
#include <new>

#include "objects/shared_region.hpp"
#include "objects/sync_layout.hpp"
#include "sys/robust_mutex.hpp"

namespace ipckit::detail {
namespace {

std::size_t align_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

std::size_t data_offset(const ValueCore::Shape& shape) {
  return align_up(sizeof(ValueLayout), std::max<std::size_t>(64, shape.alignment));
}

std::size_t total_size(const ValueCore::Shape& shape) {
  if (shape.count > (std::size_t{1} << 40) / std::max<std::size_t>(1, shape.element_size))
    throw ValueError("an Array of " + std::to_string(shape.count) + " elements is too large");
  return data_offset(shape) + shape.count * shape.element_size;
}

SharedRegion::Init initializer(const ValueCore::Shape& shape, bool with_lock, const void* initial) {
  return [shape, with_lock, initial](std::byte* p) {
    auto* v = new (p) ValueLayout{};
    v->element_size = static_cast<std::uint32_t>(shape.element_size);
    v->has_lock = with_lock ? 1 : 0;
    v->count = shape.count;
    v->data_offset = static_cast<std::uint32_t>(data_offset(shape));
    v->alignment = static_cast<std::uint32_t>(shape.alignment);
    if (with_lock) {
      new (&v->lock) LockLayout{};
      sys::robust_mutex_init(v->lock.mutex, false);
    }
    if (initial != nullptr && shape.count > 0)
      std::memcpy(p + v->data_offset, initial, shape.count * shape.element_size);
  };
}

ObjectKind kind_of(const ValueCore::Shape& shape) { return shape.array ? ObjectKind::Array : ObjectKind::Value; }

}  // namespace

ValueCore::ValueCore(const Shape& shape, bool with_lock, const void* initial)
    : ValueCore(SharedRegion::anonymous(kind_of(shape), total_size(shape), initializer(shape, with_lock, initial)),
                shape) {}

ValueCore ValueCore::create(std::string_view name, const Shape& shape, bool with_lock, const void* initial) {
  return ValueCore(SharedRegion::create(name, kind_of(shape), total_size(shape), initializer(shape, with_lock, initial)),
                   shape);
}

ValueCore ValueCore::open(std::string_view name, const Shape& shape) {
  return ValueCore(SharedRegion::open(name, kind_of(shape)), shape);
}

ValueCore::ValueCore(std::shared_ptr<SharedRegion> region, const Shape& shape) : region_(std::move(region)) {
  auto* v = std::launder(reinterpret_cast<ValueLayout*>(region_->object()));
  if (v->element_size != shape.element_size || v->alignment != shape.alignment)
    throw ValueError(region_->describe() + " holds elements of " + std::to_string(v->element_size) +
                     " bytes (alignment " + std::to_string(v->alignment) + "), not " +
                     std::to_string(shape.element_size) + " (alignment " + std::to_string(shape.alignment) + ")");
  if (!shape.array && v->count != 1) throw ValueError(region_->describe() + " does not hold one value");
  const std::uint64_t room = v->header.size;
  if (v->data_offset < sizeof(ValueLayout) || v->data_offset % std::max<std::size_t>(1, shape.alignment) != 0 ||
      v->data_offset > room || v->count > (room - v->data_offset) / std::max<std::size_t>(1, shape.element_size))
    throw ValueError(region_->describe() + " claims " + std::to_string(v->count) + " elements at offset " +
                     std::to_string(v->data_offset) + " in " + std::to_string(room) + " bytes");
  data_ = region_->object() + v->data_offset;
  count_ = static_cast<std::size_t>(v->count);
  if (v->has_lock != 0) lock_.reset(new Lock(region_, &v->lock, false));
}

Lock& ValueCore::require_lock() const {
  if (!lock_) throw ValueError(region_->describe() + " was made without a lock (a raw value)");
  return *lock_;
}

const std::string& ValueCore::name() const noexcept { return region_->name(); }
void ValueCore::unlink() { region_->unlink(); }

}  // namespace ipckit::detail
