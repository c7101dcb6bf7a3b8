// sys/mapping.hpp — memory shared between processes: POSIX shm names, memfds, files, and
// the mappings of them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "sys/unique_fd.hpp"

namespace ipckit::sys {

// A MAP_SHARED mapping, unmapped on destruction. Move-only.
class Mapping {
 public:
  Mapping() noexcept = default;
  Mapping(void* address, std::size_t length) noexcept : address_(address), length_(length) {}
  Mapping(Mapping&& other) noexcept
      : address_(std::exchange(other.address_, nullptr)), length_(std::exchange(other.length_, 0)) {}
  Mapping& operator=(Mapping&& other) noexcept {
    if (this != &other) {
      reset();
      address_ = std::exchange(other.address_, nullptr);
      length_ = std::exchange(other.length_, 0);
    }
    return *this;
  }
  ~Mapping() { reset(); }

  std::byte* data() const noexcept { return static_cast<std::byte*>(address_); }
  std::size_t size() const noexcept { return length_; }
  std::span<std::byte> bytes() const noexcept { return {data(), length_}; }
  explicit operator bool() const noexcept { return address_ != nullptr; }
  void reset() noexcept;

 private:
  void* address_ = nullptr;
  std::size_t length_ = 0;
};

// mmap(MAP_SHARED) of `length` bytes of `fd` from offset 0.
Mapping map_fd(int fd, std::size_t length, bool writable, std::string_view subject);
// mmap(MAP_SHARED | MAP_ANONYMOUS): zeroed memory that forked children share.
Mapping map_anonymous(std::size_t length, std::string_view subject);

// shm_open(O_CREAT | O_EXCL): throws FileExistsError when the name is taken.
UniqueFd shm_create(const std::string& os_name, unsigned mode);
// shm_open of an existing name: throws FileNotFoundError when there is none.
UniqueFd shm_open_existing(const std::string& os_name, bool writable);
// shm_unlink: throws FileNotFoundError when there is no such name.
void shm_remove(const std::string& os_name);
// shm_unlink, ignoring every error (for cleanup paths).
void shm_remove_quietly(const std::string& os_name) noexcept;

// memfd_create(MFD_CLOEXEC): an anonymous file that lives while an fd or mapping does.
UniqueFd memfd(const std::string& name);
// open(2) of a path for a file mapping; `create` makes it if missing (mode 0600 before umask).
UniqueFd open_file(const std::string& path, bool writable, bool create);
// ftruncate / fstat.
void set_file_size(int fd, std::size_t size, std::string_view subject);
std::size_t file_size(int fd, std::string_view subject);
// dup(2) with FD_CLOEXEC.
UniqueFd duplicate_fd(int fd, std::string_view subject);

// The system page size.
std::size_t page_size() noexcept;

}  // namespace ipckit::sys
