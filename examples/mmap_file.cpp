// Memory-mapped files shared between processes (seeds/001, "Multiprocessing or Map: Shared
// Memory": "the mmap module can be used for mapping files into memory, which can then be
// shared between processes"), with ipckit.
//
// A writer process maps a file (creating it with room for a header and eight 64-byte
// records) and writes five messages into it. A reader process maps the same file by its
// path, read-only, and prints each message as soon as it is there: both mappings are
// MAP_SHARED views of the same pages, so the reader sees the writer's bytes without any
// read() or write() of the file. A Pipe tells the reader when a record is complete (a
// turn, not the data). At the end the main process maps the file once more — the bytes
// live in the file, not in either process — and removes it.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

#include "ipckit/connection.hpp"
#include "ipckit/process.hpp"
#include "ipckit/shared_memory.hpp"

namespace {

// The file: a count, then fixed-size records of NUL-padded text.
struct Record {
  char text[64];
};
struct Layout {
  std::uint64_t count;
  Record records[8];
};
constexpr int kMessages = 5;

void writer_process(const std::string& path, ipckit::Connection& reader) {
  auto file = ipckit::SharedMemory::map_file(path, {.size = sizeof(Layout), .create = true});
  Layout& layout = file.as<Layout>(0, 1)[0];
  for (int i = 0; i < kMessages; ++i) {
    const std::string message = "Message " + std::to_string(i) + " from the writer";
    Record& record = layout.records[i];
    std::memset(record.text, 0, sizeof record.text);
    std::memcpy(record.text, message.data(), std::min(message.size(), sizeof record.text - 1));
    layout.count = static_cast<std::uint64_t>(i + 1);
    std::cout << "Writer: wrote '" << message << "'" << std::endl;
    reader.send(std::optional<int>(i));  // record i is complete
  }
  reader.send(std::optional<int>());  // no more records
  file.close();
}

void reader_process(const std::string& path, ipckit::Connection& writer) {
  std::optional<ipckit::SharedMemory> file;
  while (const auto index = writer.recv<std::optional<int>>()) {
    // The first notice means the writer has created and sized the file: map it now.
    if (!file) file = ipckit::SharedMemory::map_file(path, {.read_only = true});
    const Layout& layout = file->as<Layout>(0, 1)[0];
    std::cout << "Reader: read '" << layout.records[*index].text << "'" << std::endl;
  }
  if (file) file->close();
}

}  // namespace

int main() {
  const std::string file_name = "ipckit-mmap-example-" + std::to_string(ipckit::current_process().pid);
  const std::string path = (std::filesystem::temp_directory_path() / file_name).string();
  auto [writer_end, reader_end] = ipckit::Pipe();
  ipckit::Process writer([&] {
    reader_end.close();
    writer_process(path, writer_end);
  }, "Writer");
  ipckit::Process reader([&] {
    writer_end.close();
    reader_process(path, reader_end);
  }, "Reader");
  writer.start();
  reader.start();
  writer_end.close();
  reader_end.close();
  writer.join();
  reader.join();

  bool ok = writer.exitcode() == 0 && reader.exitcode() == 0;  // a failed child said why on stderr
  if (std::filesystem::exists(path)) {
    auto file = ipckit::SharedMemory::map_file(path, {.read_only = true});
    const Layout& layout = file.as<Layout>(0, 1)[0];
    std::cout << "Main process: the file holds " << layout.count << " messages in " << file.size()
              << " bytes; the last is '" << layout.records[layout.count - 1].text << "'" << std::endl;
    file.unlink();  // removes the file
    file.close();
  } else {
    ok = false;
  }
  if (!ok) return 1;
  std::cout << "Main process: removed the file. All done!" << std::endl;
}
