// The first pipe example of seeds/004 ("sub process", Pipes): another program's output
// captured, as Python's
//
//   result = subprocess.run(['ls', '-l'], capture_output=True, text=True)
//   print(result.stdout)
//
// Here ls lists a directory this program makes, holding files of known sizes, modes and
// times, in the C locale and UTC, so that the listing is the same from run to run (but for
// the owner and the directory's name). Then ls of a name that does not exist, with
// check = true: its non-zero exit status is a CalledProcessError holding what ls wrote to
// stderr (Python's check=True).
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>

#include <unistd.h>

#include "ipckit/subprocess.hpp"

namespace fs = std::filesystem;
namespace sp = ipckit::subprocess;

namespace {

// A directory of its own, removed with what it holds at the end.
struct TempDir {
  fs::path path = fs::temp_directory_path() / ("ipckit_subprocess_ls_" + std::to_string(::getpid()));
  TempDir() { fs::create_directory(path); }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

// A file holding `text` with mode `mode`, last written on 2 January 2001 (so ls -l shows
// the year rather than a time of day).
void write_file(const fs::path& path, const std::string& text, fs::perms mode) {
  std::ofstream(path) << text;
  fs::permissions(path, mode);
  using namespace std::chrono;
  fs::last_write_time(path, file_clock::from_sys(sys_seconds{sys_days{2001y / January / 2}} + 3h));
}

}  // namespace

int main() try {
  const TempDir dir;
  write_file(dir.path / "notes.txt", "remember the milk\n", static_cast<fs::perms>(0644));
  write_file(dir.path / "run.sh", "#!/bin/sh\necho hello\n", static_cast<fs::perms>(0755));
  write_file(dir.path / "secret.key", std::string(32, 'k'), static_cast<fs::perms>(0600));
  const std::map<std::string, std::string> c_locale_utc{{"LC_ALL", "C"}, {"TZ", "UTC"}};

  const sp::CompletedProcess result =
      sp::run({"ls", "-l", dir.path.string()}, {.capture_output = true, .extra_env = c_locale_utc});
  std::cout << "$ ls -l " << dir.path.string() << "\n" << result.out;
  std::cout << "Return code: " << result.returncode << std::endl;
  std::cerr << result.err;  // nothing, unless ls complained
  if (result.returncode != 0) return 1;

  try {
    sp::run({"ls", "-l", (dir.path / "missing").string()},
            {.capture_output = true, .check = true, .extra_env = c_locale_utc});
    std::cerr << "subprocess_ls: ls of a missing file succeeded\n";
    return 1;
  } catch (const sp::CalledProcessError& error) {
    std::cout << "ls of a missing file: return code " << error.returncode()
              << ", stderr: " << error.err();
  }
  return 0;
} catch (const std::exception& error) {
  std::cerr << "subprocess_ls: " << error.what() << "\n";
  return 1;
}
