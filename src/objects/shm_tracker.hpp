// objects/shm_tracker.hpp — the tracker process that removes named shared memory segments
// once their creator and their users have ended (the "Lifetime" paragraph of
// include/ipckit/shared_memory.hpp; how it decides: docs/formats/shared_memory.md).
//
// One tracker serves a process tree: the first tracked create in a process starts it
// (double fork), and processes forked afterwards share it through the inherited end of a
// SOCK_SEQPACKET socket pair, each sending messages in its own name. The tracker ends when
// every creator it heard of has ended, no segment waits for a user to end, and every
// process holding the socket has closed it.
//
// Private to src/objects/; tests include it for ensure_tracker().
#pragma once

#include <cstdint>
#include <string>

namespace ipckit::shm {

enum class Notice : std::uint8_t {
  Created = 1,    // a tracked segment was created (sent right after shm_open)
  Unlinked = 2,   // its name was removed: forget it
  Untracked = 3,  // it was untracked: forget it
};

// What a notice is about: the segment's OS name, the file behind it (so a later segment
// under the same name is never mistaken for it) and its creator.
struct SegmentId {
  const std::string& os_name;
  std::uint64_t device;
  std::uint64_t inode;
  int creator_pid;
  std::uint64_t creator_start_time;
};

// Sends a Created notice, starting this process's tracker if it has none or the one it
// had has died. Throws OSError (or Error) when no tracker can be started or reached.
void notify_created(const SegmentId& segment);
// Sends an Unlinked or Untracked notice if this process has a tracker; a tracker that has
// died is not replaced for it (it forgot everything anyway). Never throws.
void notify_forget(Notice notice, const SegmentId& segment) noexcept;

// Starts this process's tracker if it has none and returns its pid. After this, the
// process holds its end of the tracker socket (one fd, close-on-exec, until it exits):
// the shared memory tests call it before their first test so that the fixture's fd-leak
// check does not see that fd appear in the middle of a test.
int ensure_tracker();

}  // namespace ipckit::shm
