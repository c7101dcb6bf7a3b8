// The second pipe example of seeds/004 ("sub process", Pipes): input written to another
// program and its output read back, as Python's
//
//   proc = subprocess.Popen(['grep', 'example'], stdin=subprocess.PIPE,
//                           stdout=subprocess.PIPE, text=True)
//   stdout, stderr = proc.communicate(
//       input='This is a line with an example.\nThis is another line.')
//   print(stdout)
//
// Then the same with far more flowing each way than a pipe holds (over a megabyte in, a
// hundred kilobytes out): communicate() writes and reads at once, so neither grep nor this
// program is left blocked on a full pipe (and past its 20 s timeout it would throw
// TimeoutExpired).
#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>
#include <string_view>

#include "ipckit/subprocess.hpp"

namespace sp = ipckit::subprocess;
using namespace std::chrono_literals;

int main() try {
  sp::Popen grep({"grep", "example"}, {.in = sp::PIPE, .out = sp::PIPE});
  const auto [matches, _] = grep.communicate(
      "This is a line with an example.\n"
      "This is another line.\n"
      "Here is one more example,\n"
      "and a line without one.\n");
  std::cout << "grep 'example' printed:\n" << matches;
  std::cout << "grep exited with " << *grep.returncode() << std::endl;

  std::string lines;
  for (int i = 1; i <= 100000; ++i) lines += "line " + std::to_string(i) + "\n";
  sp::Popen many({"grep", "7$"}, {.in = sp::PIPE, .out = sp::PIPE});
  const std::string out = many.communicate(lines, 20s).first;
  const auto count = std::ranges::count(out, '\n');
  std::string_view text(out);
  if (text.ends_with('\n')) text.remove_suffix(1);
  std::cout << "grep '7$' of " << lines.size() << " bytes printed " << out.size() << " bytes, "
            << count << " lines, from '" << text.substr(0, text.find('\n')) << "' to '"
            << text.substr(text.rfind('\n') + 1) << "'" << std::endl;
  std::cout << "grep exited with " << *many.returncode() << std::endl;
  return grep.returncode() == 0 && many.returncode() == 0 && count == 10000 ? 0 : 1;
} catch (const std::exception& error) {
  std::cerr << "subprocess_grep: " << error.what() << "\n";
  return 1;
}
