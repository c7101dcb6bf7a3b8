// ipckit/ipckit.hpp — every public ipckit header.
#pragma once

#include "ipckit/codec.hpp"       // values <-> MessagePack bytes
#include "ipckit/connection.hpp"  // Connection, Pipe(), Listener, Client
#include "ipckit/error.hpp"       // the exception hierarchy
#include "ipckit/process.hpp"     // Process, current_process(), parent_process(), ...
#include "ipckit/queue.hpp"       // Queue, SimpleQueue, JoinableQueue, ByteQueue
#include "ipckit/shared_memory.hpp"  // SharedMemory: named, anonymous, file-backed
#include "ipckit/socket.hpp"      // Socket, ServerSocket: plain bytes, no frames
#include "ipckit/subprocess.hpp"  // subprocess::run, Popen
#include "ipckit/sync.hpp"        // Lock, RLock, Semaphore, Event, Condition, Barrier
#include "ipckit/value.hpp"       // Value<T>, Array<T>
#include "ipckit/wait.hpp"        // wait() on connections, processes and fds
