// main() for a fuzz target without libFuzzer: feeds inputs to LLVMFuzzerTestOneInput once
// each, so the corpus (every crash found included) replays in the ordinary test suite.
//
//   <name>_replay PATH...   each PATH is a file, or a directory whose regular files are all
//                           replayed (README* skipped), in name order.
//
// Prints each input before running it, so the one that crashes is the last line shown.
// Exits 0 when every input ran, 1 on a bad path or when no input was found; a failing
// input ends the process the way it ends the fuzzer (a sanitizer report, an abort, an
// uncaught exception).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

namespace fs = std::filesystem;

bool read_file(const fs::path& path, std::vector<std::uint8_t>& out) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return false;
  out.clear();
  std::array<std::uint8_t, 1 << 16> chunk;
  std::size_t n = 0;
  while ((n = std::fread(chunk.data(), 1, chunk.size(), file)) > 0) {
    out.insert(out.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
  }
  const bool ok = std::ferror(file) == 0;
  std::fclose(file);
  return ok;
}

// The inputs named by `arg`, or false with a message when it is not usable.
bool collect(const fs::path& arg, std::vector<fs::path>& inputs) {
  std::error_code error;
  if (fs::is_directory(arg, error)) {
    std::vector<fs::path> found;
    for (const fs::directory_entry& entry : fs::directory_iterator(arg, error)) {
      const std::string name = entry.path().filename().string();
      if (entry.is_regular_file() && name.rfind("README", 0) != 0) found.push_back(entry.path());
    }
    if (error) {
      std::fprintf(stderr, "replay: cannot list %s: %s\n", arg.c_str(), error.message().c_str());
      return false;
    }
    std::sort(found.begin(), found.end());
    inputs.insert(inputs.end(), found.begin(), found.end());
    return true;
  }
  if (fs::is_regular_file(arg, error)) {
    inputs.push_back(arg);
    return true;
  }
  std::fprintf(stderr, "replay: %s is neither a file nor a directory\n", arg.c_str());
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE_OR_DIRECTORY...\n", argv[0]);
    return 1;
  }
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    if (!collect(argv[i], inputs)) return 1;
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "replay: no input found\n");
    return 1;
  }
  std::vector<std::uint8_t> data;
  for (const fs::path& input : inputs) {
    if (!read_file(input, data)) {
      std::fprintf(stderr, "replay: cannot read %s\n", input.c_str());
      return 1;
    }
    std::printf("replay: %s (%zu bytes)\n", input.c_str(), data.size());
    std::fflush(stdout);
    // An exactly sized heap copy, as libFuzzer passes: ASan sees a read one past the end.
    auto copy = std::make_unique<std::uint8_t[]>(data.size());
    std::copy(data.begin(), data.end(), copy.get());
    LLVMFuzzerTestOneInput(copy.get(), data.size());
  }
  std::printf("replay: %zu inputs, all passed\n", inputs.size());
  return 0;
}
