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
