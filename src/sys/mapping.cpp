#include "sys/mapping.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "ipckit/error.hpp"
#include "sys/sys_error.hpp"

namespace ipckit::sys {
namespace {

[[noreturn]] void throw_name_error(int err, const char* call, const std::string& subject) {
  const std::error_code code(err, std::generic_category());
  if (err == EEXIST) throw FileExistsError(code, call, subject);
  if (err == ENOENT) throw FileNotFoundError(code, call, subject);
  throw_os_error(err, call, subject);
}

}  // namespace

void Mapping::reset() noexcept {
  if (address_ != nullptr) ::munmap(address_, length_);
  address_ = nullptr;
  length_ = 0;
}

Mapping map_fd(int fd, std::size_t length, bool writable, std::string_view subject) {
  void* p = ::mmap(nullptr, length, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) throw_last_error("mmap(MAP_SHARED, " + std::to_string(length) + " bytes)", subject);
  return Mapping(p, length);
}

Mapping map_anonymous(std::size_t length, std::string_view subject) {
  void* p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw_last_error("mmap(MAP_SHARED | MAP_ANONYMOUS, " + std::to_string(length) + " bytes)", subject);
  return Mapping(p, length);
}

UniqueFd shm_create(const std::string& os_name, unsigned mode) {
  const int fd = ::shm_open(os_name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) throw_name_error(errno, "shm_open(O_CREAT | O_EXCL)", os_name);
  return UniqueFd(fd);
}

UniqueFd shm_open_existing(const std::string& os_name, bool writable) {
  const int fd = ::shm_open(os_name.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
  if (fd < 0) throw_name_error(errno, "shm_open", os_name);
  return UniqueFd(fd);
}

void shm_remove(const std::string& os_name) {
  if (::shm_unlink(os_name.c_str()) != 0) throw_name_error(errno, "shm_unlink", os_name);
}

void shm_remove_quietly(const std::string& os_name) noexcept { ::shm_unlink(os_name.c_str()); }

UniqueFd memfd(const std::string& name) {
  const int fd = ::memfd_create(name.c_str(), MFD_CLOEXEC);
  if (fd < 0) throw_last_error("memfd_create", name);
  return UniqueFd(fd);
}

UniqueFd open_file(const std::string& path, bool writable, bool create) {
  int flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC;
  if (create) flags |= O_CREAT;
  const int fd = ::open(path.c_str(), flags, 0600);
  if (fd < 0) throw_name_error(errno, "open", path);
  return UniqueFd(fd);
}

void set_file_size(int fd, std::size_t size, std::string_view subject) {
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0)
    throw_last_error("ftruncate(" + std::to_string(size) + ")", subject);
}

std::size_t file_size(int fd, std::string_view subject) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_last_error("fstat", subject);
  return static_cast<std::size_t>(st.st_size);
}

UniqueFd duplicate_fd(int fd, std::string_view subject) {
  const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) throw_last_error("fcntl(F_DUPFD_CLOEXEC)", subject);
  return UniqueFd(copy);
}

std::size_t page_size() noexcept {
  static const std::size_t size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

}  // namespace ipckit::sys
