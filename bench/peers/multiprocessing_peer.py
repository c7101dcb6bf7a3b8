#!/usr/bin/env python3
"""Python multiprocessing's side of `ipckit bench`.

    multiprocessing_peer.py --workload NAME --reps N [--min-time SECONDS] [--quick]

Runs the workload NAME the way a Python program would do it with multiprocessing, as fast
as Python reasonably allows (payloads allocated once, send_bytes/recv_bytes bound to
locals, no per-message work), and prints one JSON object:

    {"workload": NAME, "unit": "...", "lower_is_better": ..., "samples": [...],
     "iterations": N, "python": "3.11.2", "start_method": "fork"}

with one sample per repetition in the workload's unit. Like Google Benchmark on the C++
side, the iteration count grows until one run lasts at least --min-time seconds, and that
count is then used for every repetition. Each run starts its child once, waits until the
child says it is ready, and only then starts the clock: the child's start-up is never
timed. Children use multiprocessing's default start method (fork on Linux up to 3.13).

Uses the standard library only, so any python3 runs it.
"""

import argparse
import json
import multiprocessing
import os
import platform
import sys
import time
from multiprocessing.connection import Client, Listener

READY = b"r"
MAX_ITERATIONS = 10**9


def _echo(conn, n):
    recv, send = conn.recv_bytes, conn.send_bytes
    send(READY)
    for _ in range(n):
        send(recv())


def _sender(conn, n, size):
    payload = bytes(size)
    send = conn.send_bytes
    send(READY)
    for _ in range(n):
        send(payload)


def _noop():
    pass


def _with_child(target, n, *args):
    """Starts target(child_end, n, *args) in a child; returns (parent_end, process) once
    the child is ready."""
    parent_end, child_end = multiprocessing.Pipe()
    process = multiprocessing.Process(target=target, args=(child_end, n) + args, daemon=True)
    process.start()
    child_end.close()
    if parent_end.recv_bytes() != READY:
        raise RuntimeError("the child sent a bad ready message")
    return parent_end, process


def _finish(conn, process):
    process.join()
    conn.close()
    if process.exitcode != 0:
        raise RuntimeError(f"the child exited with {process.exitcode}")


def pipe_round_trip(n, size):
    """Seconds for n round trips of size bytes to an echoing child."""
    conn, process = _with_child(_echo, n)
    payload = bytes(size)
    send, recv = conn.send_bytes, conn.recv_bytes
    start = time.perf_counter()
    for _ in range(n):
        send(payload)
        recv()
    elapsed = time.perf_counter() - start
    _finish(conn, process)
    return elapsed


def pipe_stream(n, size, into_buffer=False):
    """Seconds to receive n messages of size bytes that a child sends as fast as it can:
    with recv_bytes (a new bytes object each), or into one reused buffer."""
    conn, process = _with_child(_sender, n, size)
    start = time.perf_counter()
    if into_buffer:
        buffer, recv_into = bytearray(size), conn.recv_bytes_into
        for _ in range(n):
            recv_into(buffer)
    else:
        recv = conn.recv_bytes
        for _ in range(n):
            recv()
    elapsed = time.perf_counter() - start
    _finish(conn, process)
    return elapsed


def process_start_join(n):
    """Seconds for n starts and joins of a process whose target does nothing."""
    Process = multiprocessing.Process
    start = time.perf_counter()
    for _ in range(n):
        p = Process(target=_noop)
        p.start()
        p.join()
    elapsed = time.perf_counter() - start
    if p.exitcode != 0:
        raise RuntimeError(f"the child exited with {p.exitcode}")
    return elapsed


def _two_cpus():
    """Two different CPUs of this process's mask, for the parent and the child of a
    two-process workload (as the C++ side's TwoCpus); (None, None) when there is one."""
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


def lock_uncontended(n):
    """Seconds for n acquire() + release() of a multiprocessing.Lock nobody else uses."""
    lock = multiprocessing.Lock()
    acquire, release = lock.acquire, lock.release
    start = time.perf_counter()
    for _ in range(n):
        acquire()
        release()
    return time.perf_counter() - start


def _lock_incrementer(conn, n, lock, counter, cpu):
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    acquire, release = lock.acquire, lock.release
    conn.send_bytes(READY)
    conn.recv_bytes()  # go
    for _ in range(n):
        acquire()
        counter.value += 1
        release()
    conn.send_bytes(b"d")


def lock_contended(n):
    """Seconds for this process and a child, on two different CPUs, to add 1 to a shared
    counter n times each, each time holding a multiprocessing.Lock: from the "go" to the
    child's "done"."""
    parent_cpu, child_cpu = _two_cpus()
    saved = os.sched_getaffinity(0)
    lock = multiprocessing.Lock()
    counter = multiprocessing.Value("q", 0, lock=False)
    conn, process = _with_child(_lock_incrementer, n, lock, counter, child_cpu)
    if parent_cpu is not None:
        os.sched_setaffinity(0, {parent_cpu})
    acquire, release = lock.acquire, lock.release
    try:
        start = time.perf_counter()
        conn.send_bytes(b"g")
        for _ in range(n):
            acquire()
            counter.value += 1
            release()
        conn.recv_bytes()  # done
        elapsed = time.perf_counter() - start
    finally:
        os.sched_setaffinity(0, saved)
    _finish(conn, process)
    if counter.value != 2 * n:
        raise RuntimeError(f"the counter is {counter.value}, expected {2 * n}")
    return elapsed


SETTLE = 20e-6  # seconds: the untimed pause before each ping (see event_wake)


def _event_ponger(conn, n, ping, pong, cpu):
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    wait, clear, answer = ping.wait, ping.clear, pong.set
    conn.send_bytes(READY)
    for _ in range((n + 1) // 2):
        wait()
        clear()
        answer()


def event_wake(n):
    """Seconds for n wake-ups of a process asleep in Event.wait(), counted as the C++ side
    does: (n + 1) // 2 round trips of a ping Event set here and a pong Event the child sets
    in answer, each leg one wake-up, so the figure is half a round trip. The two processes
    run on two different CPUs, and before each ping an untimed pause of SETTLE lets the
    child fall asleep."""
    parent_cpu, child_cpu = _two_cpus()
    saved = os.sched_getaffinity(0)
    ping, pong = multiprocessing.Event(), multiprocessing.Event()
    conn, process = _with_child(_event_ponger, n, ping, pong, child_cpu)
    if parent_cpu is not None:
        os.sched_setaffinity(0, {parent_cpu})
    set_ping, wait, clear, now = ping.set, pong.wait, pong.clear, time.perf_counter
    elapsed = 0.0
    try:
        for i in range((n + 1) // 2):
            settled = now() + SETTLE
            while now() < settled:
                pass
            start = now()
            set_ping()
            if i == n // 2:  # n is odd: the last iteration is a ping alone
                elapsed += now() - start
                wait()  # its answer, untimed
                break
            wait()
            clear()
            elapsed += now() - start
    finally:
        os.sched_setaffinity(0, saved)
    _finish(conn, process)
    return elapsed


def value_increment(n):
    """Seconds for n increments of a multiprocessing.Value('q') under its own lock."""
    value = multiprocessing.Value("q", 0)
    lock = value.get_lock()
    start = time.perf_counter()
    for _ in range(n):
        with lock:
            value.value += 1
    elapsed = time.perf_counter() - start
    if value.value != n:
        raise RuntimeError(f"the value is {value.value}, expected {n}")
    return elapsed


def shm_create_unlink(n, size):
    """Seconds for n SharedMemory(create=True, size=size), close(), unlink(), with the
    resource tracker (the default); the tracker is started before the clock."""
    from multiprocessing import resource_tracker
    from multiprocessing.shared_memory import SharedMemory
    resource_tracker.ensure_running()
    start = time.perf_counter()
    for _ in range(n):
        shm = SharedMemory(create=True, size=size)
        shm.close()
        shm.unlink()
    return time.perf_counter() - start


# --- queues ---------------------------------------------------------------------------
#
# As on the C++ side (bench/queue_bench.cpp), children wait for a "go" sent after the
# clock starts, so every run starts with an empty queue. Payloads are bytes objects,
# pickled by the queue like any item. Only the ping-pong workloads pin the two processes
# to two CPUs: a Queue's producer also has a feeder thread, and confining it to the
# producer's CPU slows the throughput workloads down (batches by about a third here).

QUEUE_BATCH = 64  # items per put in queue.throughput.batch
QUEUE_SETTLE = 200e-6  # seconds: the untimed pause before each ping in queue.wake


def _queue_producer(conn, n, queue, size, batched, report_done):
    """Puts n items of size bytes (in lists of QUEUE_BATCH distinct bytes objects when
    batched), after the go; with report_done, says "d" once they are all in the pipe."""
    put = queue.put
    conn.send_bytes(READY)
    if batched:
        # Distinct objects: pickle would send one object repeated in a list only once.
        items = [bytes([i]) * size for i in range(QUEUE_BATCH)]
        whole, rest = divmod(n, QUEUE_BATCH)
        conn.recv_bytes()  # go
        for _ in range(whole):
            put(items)
        if rest:
            put(items[:rest])
    else:
        payload = bytes(size)
        conn.recv_bytes()  # go
        for _ in range(n):
            put(payload)
    if report_done:
        if hasattr(queue, "join_thread"):  # Queue: wait for its feeder thread to write all
            queue.close()
            queue.join_thread()
        conn.send_bytes(b"d")


def queue_stream(n, size, kind=multiprocessing.Queue, batched=False):
    """Seconds for this process to get n items of size bytes that a child puts into a
    queue of `kind` (multiprocessing.Queue or SimpleQueue) as fast as it can, from the go
    to the last item; batched: the child puts lists of QUEUE_BATCH items, and the items
    in the lists are counted."""
    queue = kind()
    conn, process = _with_child(_queue_producer, n, queue, size, batched, False)
    get = queue.get
    start = time.perf_counter()
    conn.send_bytes(b"g")
    if batched:
        taken = 0
        while taken < n:
            taken += len(get())
    else:
        for _ in range(n):
            get()
    elapsed = time.perf_counter() - start
    _finish(conn, process)
    return elapsed


def _queue_consumer(conn, n, queue):
    """After the go, gets items until None; then says how many it got."""
    get = queue.get
    conn.send_bytes(READY)
    conn.recv_bytes()  # go
    taken = 0
    while get() is not None:
        taken += 1
    conn.send_bytes(taken.to_bytes(8, "little"))


def queue_2p2c(n, size):
    """Seconds for two producers (this process and a child) to put n items of size bytes
    each into one multiprocessing.Queue and two child consumers to get all 2n: from the
    go to both consumers' counts. After its own n, this process waits until the child's
    are all in the pipe, then puts a None per consumer (its end)."""
    queue = multiprocessing.Queue()
    producer = _with_child(_queue_producer, n, queue, size, False, True)
    consumers = [_with_child(_queue_consumer, n, queue) for _ in range(2)]
    payload, put = bytes(size), queue.put
    start = time.perf_counter()
    for conn, _ in [producer] + consumers:
        conn.send_bytes(b"g")
    for _ in range(n):
        put(payload)
    producer[0].recv_bytes()  # done
    for _ in consumers:
        put(None)
    taken = sum(int.from_bytes(conn.recv_bytes(), "little") for conn, _ in consumers)
    elapsed = time.perf_counter() - start
    for conn, process in [producer] + consumers:
        _finish(conn, process)
    if taken != 2 * n:
        raise RuntimeError(f"the consumers got {taken} items, expected {2 * n}")
    return elapsed


def _queue_ponger(conn, n, ping, pong, cpu):
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    get, put = ping.get, pong.put
    conn.send_bytes(READY)
    for _ in range((n + 1) // 2):
        put(get())


def queue_ping_pong(n, size, settle=0.0):
    """Seconds for n one-way trips of size bytes between this process and a child, on two
    different CPUs, over two multiprocessing.Queues, counted as the C++ side does:
    (n + 1) // 2 round trips of an item put into `ping` here and put back into `pong` by
    the child, so the figure is half a round trip. With settle (queue.wake), an untimed
    pause of that many seconds before each ping lets the child fall asleep."""
    parent_cpu, child_cpu = _two_cpus()
    saved = os.sched_getaffinity(0)
    ping, pong = multiprocessing.Queue(), multiprocessing.Queue()
    conn, process = _with_child(_queue_ponger, n, ping, pong, child_cpu)
    if parent_cpu is not None:
        os.sched_setaffinity(0, {parent_cpu})
    payload, put, get, now = bytes(size), ping.put, pong.get, time.perf_counter
    elapsed = 0.0
    try:
        if settle:
            for i in range((n + 1) // 2):
                settled = now() + settle
                while now() < settled:
                    pass
                start = now()
                put(payload)
                if i == n // 2:  # n is odd: the last iteration is a ping alone
                    elapsed += now() - start
                    get()  # its answer, untimed
                    break
                get()
                elapsed += now() - start
        else:
            start = now()
            for _ in range(n // 2):
                put(payload)
                get()
            elapsed = now() - start
            if n % 2:
                start = now()
                put(payload)
                elapsed += now() - start
                get()  # its answer, untimed
    finally:
        os.sched_setaffinity(0, saved)
    _finish(conn, process)
    return elapsed


# --- Listener and Client ----------------------------------------------------------------
#
# As on the C++ side (bench/connection_bench.cpp): multiprocessing.connection's Listener
# and Client between this process and a child, the two on two different CPUs, the child
# started and connected before the clock starts.

CONNECTION_AUTHKEY = b"ipckit-bench-authkey"
ACK = b"a"


def _connection_echo(conn, n, address, cpu):
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    peer = Client(address)
    conn.send_bytes(READY)
    recv, send = peer.recv_bytes, peer.send_bytes
    for _ in range(n):
        send(recv())
    peer.close()


def connection_round_trip(n, size, family):
    """Seconds for n round trips of size bytes between a Listener here (family AF_UNIX: a
    socket file; AF_INET: 127.0.0.1, a free port) and a child that connects with Client
    and echoes each message."""
    parent_cpu, child_cpu = _two_cpus()
    saved = os.sched_getaffinity(0)
    listener = Listener(("127.0.0.1", 0) if family == "AF_INET" else None, family=family)
    try:
        conn, process = _with_child(_connection_echo, n, listener.address, child_cpu)
        peer = listener.accept()
    finally:
        listener.close()
    if parent_cpu is not None:
        os.sched_setaffinity(0, {parent_cpu})
    payload = bytes(size)
    send, recv = peer.send_bytes, peer.recv_bytes
    try:
        start = time.perf_counter()
        for _ in range(n):
            send(payload)
            recv()
        elapsed = time.perf_counter() - start
    finally:
        os.sched_setaffinity(0, saved)
    peer.close()
    _finish(conn, process)
    return elapsed


def _authenticating_listener(conn, n, cpu):
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    # backlog: Listener's default is 1, and a connect beyond the backlog has its SYN
    # dropped and retried a second later; 128 keeps that out of the figure, which is then
    # the handshake's (ipckit's Listener queues 4096 by default).
    listener = Listener(("127.0.0.1", 0), backlog=128, authkey=CONNECTION_AUTHKEY)
    conn.send_bytes(READY)
    conn.send_bytes(str(listener.address[1]).encode())  # the port
    accept = listener.accept
    for _ in range(n):
        accept().close()
    listener.close()


def connection_handshake(n):
    """Seconds for n Client(address, authkey=...) and close() against a child whose
    Listener has the same authkey and accepts and closes each connection: the connect and
    both directions of the challenge-response."""
    parent_cpu, child_cpu = _two_cpus()
    saved = os.sched_getaffinity(0)
    conn, process = _with_child(_authenticating_listener, n, child_cpu)
    address = ("127.0.0.1", int(conn.recv_bytes()))
    if parent_cpu is not None:
        os.sched_setaffinity(0, {parent_cpu})
    key = CONNECTION_AUTHKEY
    try:
        start = time.perf_counter()
        for _ in range(n):
            Client(address, authkey=key).close()
        elapsed = time.perf_counter() - start
    finally:
        os.sched_setaffinity(0, saved)
    _finish(conn, process)
    return elapsed


def _connection_receiver(conn, n, address, size, cpu):
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    peer = Client(address)
    conn.send_bytes(READY)
    recv = peer.recv_bytes
    for _ in range(n):
        if len(recv()) != size:
            raise RuntimeError("a message of the wrong size")
    peer.send_bytes(ACK)
    peer.close()


def connection_stream(n, size):
    """Seconds to send n messages of size bytes as fast as possible over a TCP connection
    from a Listener here to a child that receives each with recv_bytes and then answers
    with an ack: from the first send to the ack."""
    parent_cpu, child_cpu = _two_cpus()
    saved = os.sched_getaffinity(0)
    listener = Listener(("127.0.0.1", 0))
    try:
        conn, process = _with_child(_connection_receiver, n, listener.address, size, child_cpu)
        peer = listener.accept()
    finally:
        listener.close()
    if parent_cpu is not None:
        os.sched_setaffinity(0, {parent_cpu})
    payload, send = bytes(size), peer.send_bytes
    try:
        start = time.perf_counter()
        for _ in range(n):
            send(payload)
        if peer.recv_bytes() != ACK:
            raise RuntimeError("the child sent a bad ack")
        elapsed = time.perf_counter() - start
    finally:
        os.sched_setaffinity(0, saved)
    peer.close()
    _finish(conn, process)
    return elapsed


# --- subprocess -------------------------------------------------------------------------
#
# As on the C++ side (bench/subprocess_bench.cpp): every iteration starts a program.

def subprocess_run_true(n):
    """Seconds for n subprocess.run(['/bin/true'])."""
    import subprocess
    run, args = subprocess.run, ["/bin/true"]
    start = time.perf_counter()
    for _ in range(n):
        completed = run(args)
    elapsed = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"/bin/true exited with {completed.returncode}")
    return elapsed


def subprocess_communicate(n, size):
    """Seconds for n Popen(['cat'], stdin=PIPE, stdout=PIPE).communicate(data) of size
    bytes, all read back."""
    import subprocess
    Popen, PIPE, args, data = subprocess.Popen, subprocess.PIPE, ["cat"], bytes(size)
    start = time.perf_counter()
    for _ in range(n):
        process = Popen(args, stdin=PIPE, stdout=PIPE)
        out, _ = process.communicate(data)
        if len(out) != size or process.returncode != 0:
            raise RuntimeError(f"cat gave back {len(out)} bytes, exit status {process.returncode}")
    return time.perf_counter() - start


def per_iteration_ns(n, seconds):
    return seconds / n * 1e9


def per_iteration_us(n, seconds):
    return seconds / n * 1e6


def per_second(n, seconds):
    return n / seconds


def megabytes_per_second(size):
    return lambda n, seconds: n * size / seconds / 1e6


MiB = 1 << 20

# name: (unit, lower_is_better, run(n) -> seconds, figure(n, seconds))
WORKLOADS = {
    "pipe.rtt.64B": ("µs", True, lambda n: pipe_round_trip(n, 64), per_iteration_us),
    "pipe.throughput.64B": ("msg/s", False, lambda n: pipe_stream(n, 64), per_second),
    "pipe.bandwidth.1MiB": ("MB/s", False, lambda n: pipe_stream(n, MiB, into_buffer=True),
                            megabytes_per_second(MiB)),
    "process.start_join": ("µs", True, process_start_join, per_iteration_us),
    "shm.create_unlink.4KiB": ("µs", True, lambda n: shm_create_unlink(n, 4096), per_iteration_us),
    "lock.uncontended": ("ns", True, lock_uncontended, per_iteration_ns),
    "lock.contended.2proc": ("increments/s", False, lock_contended, lambda n, seconds: 2 * n / seconds),
    "event.wake": ("µs", True, event_wake, per_iteration_us),
    "value.increment": ("ns", True, value_increment, per_iteration_ns),
    # multiprocessing.Queue, not SimpleQueue: its feeder thread pickles and writes while
    # the producer goes on putting, and it is the faster of the two for single items
    # (about 1.25 × SimpleQueue on the project's 2-core VMs). The ".SimpleQueue" entries
    # measure SimpleQueue for comparison; `ipckit bench` does not run them.
    "queue.throughput.1p1c.64B": ("msg/s", False, lambda n: queue_stream(n, 64), per_second),
    "queue.throughput.1p1c.64B.SimpleQueue": (
        "msg/s", False, lambda n: queue_stream(n, 64, multiprocessing.SimpleQueue), per_second),
    "queue.throughput.2p2c.64B": ("msg/s", False, lambda n: queue_2p2c(n, 64), lambda n, seconds: 2 * n / seconds),
    # Lists of 64 items per put, each list pickled whole: Python's cheapest batch (Queue
    # and SimpleQueue are within noise of each other here; Queue, as above).
    "queue.throughput.batch.64B": ("msg/s", False, lambda n: queue_stream(n, 64, batched=True), per_second),
    "queue.throughput.batch.64B.SimpleQueue": (
        "msg/s", False, lambda n: queue_stream(n, 64, multiprocessing.SimpleQueue, batched=True), per_second),
    "queue.latency.64B": ("µs", True, lambda n: queue_ping_pong(n, 64), per_iteration_us),
    "queue.wake.64B": ("µs", True, lambda n: queue_ping_pong(n, 64, QUEUE_SETTLE), per_iteration_us),
    "queue.bandwidth.1MiB": ("MB/s", False, lambda n: queue_stream(n, MiB), megabytes_per_second(MiB)),
    "connection.rtt.unix.64B": ("µs", True, lambda n: connection_round_trip(n, 64, "AF_UNIX"), per_iteration_us),
    "connection.rtt.tcp.64B": ("µs", True, lambda n: connection_round_trip(n, 64, "AF_INET"), per_iteration_us),
    "connection.handshake.tcp": ("µs", True, connection_handshake, per_iteration_us),
    "connection.throughput.tcp.64B": ("msg/s", False, lambda n: connection_stream(n, 64), per_second),
    "subprocess.run.true": ("µs", True, subprocess_run_true, per_iteration_us),
    "subprocess.communicate.64MiB": ("MB/s", False, lambda n: subprocess_communicate(n, 64 * MiB),
                                     megabytes_per_second(64 * MiB)),
}


def calibrate(run, min_time):
    """Grows the iteration count as Google Benchmark does; returns (n, seconds of the last
    run), that last run being the first repetition."""
    n = 1
    while True:
        seconds = run(n)
        if seconds >= min_time or n >= MAX_ITERATIONS:
            return n, seconds
        multiplier = min_time * 1.4 / max(seconds, 1e-9)
        if seconds / min_time <= 0.1:
            multiplier = min(multiplier, 10.0)
        n = min(MAX_ITERATIONS, max(int(n * multiplier), n + 1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", required=True, choices=sorted(WORKLOADS))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--min-time", type=float, help="seconds per repetition (default 0.5, 0.05 with --quick)")
    parser.add_argument("--quick", action="store_true", help="short run for smoke tests")
    args = parser.parse_args()
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    min_time = args.min_time if args.min_time else (0.05 if args.quick else 0.5)

    unit, lower_is_better, run, figure = WORKLOADS[args.workload]
    n, seconds = calibrate(run, min_time)
    samples = [figure(n, seconds)]
    for _ in range(args.reps - 1):
        samples.append(figure(n, run(n)))

    json.dump({"workload": args.workload, "unit": unit, "lower_is_better": lower_is_better,
               "samples": samples, "iterations": n, "python": platform.python_version(),
               "start_method": multiprocessing.get_start_method()}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
