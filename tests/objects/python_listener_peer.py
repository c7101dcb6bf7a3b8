"""Python's multiprocessing.connection Listener and Client, talking to ipckit's.

Usage: python_listener_peer.py ROLE ADDRESS [options]

ROLE
  client       multiprocessing.connection.Client(address, authkey=...)
  listener     multiprocessing.connection.Listener(address, authkey=...), then accept()
  client312    a socket wrapped in a Connection, authenticated by CPython 3.12's handshake
  listener312  (restated below: this interpreter may be older and speak only HMAC-MD5)
ADDRESS is an ipckit address (tcp://HOST:PORT, unix:///PATH, unix:@NAME). A listener
prints "ADDRESS <ipckit address>" once it listens (a tcp port 0 becomes the real one).

Options
  --authkey KEY        the key (omitted: no authentication at all)
  --bad-key KEY        clients: first connect with this key, which must be refused
  --bad-digest NAME    client312: first answer the challenge with a {NAME} MAC, which
                       must be refused
  --digest NAME        client312/listener312: the digest of this side's answers
                       (default: the one the challenge names, as CPython 3.12 does)
  --challenge-digest NAME
                       listener312/client312: the digest this side's challenge names
  --rejections N       listeners: the first N connections must fail authentication
  --connections N      clients: after any refused attempt, connect N times one after the
                       other, each followed by what --then says (default 1)
  --hold-welcome       client312: once the listener's answer is verified, print "verified"
                       and wait for a line on stdin before sending #WELCOME#
  --then converse|handles
                       what follows authentication (default converse)

After authentication:
  converse: echo each message reversed until b"bye"; then send messages of 0, 3 and
            100000 bytes (byte i is (i * 11 + 5) & 0xff) and close.
  handles:  send b"handle follows", the write end of a new pipe (send_handle), then
            b"handle sent" (and print "handle sent"); read the pipe to its end and send
            b"python read: " + what it read. Then receive b"handle follows", a handle
            (recv_handle), b"handle sent"; write b"written by python" through the
            handle, close it, send b"done", close.

Exit status: 0 when everything went as expected (each expected refusal printed as a
"rejected: " line), 3 when an authentication that had to fail succeeded, 1 on any other
error (with its traceback).
"""
import argparse
import hmac
import os
import signal
import socket
import sys
from multiprocessing import AuthenticationError, reduction
from multiprocessing.connection import Client, Connection, Listener

# --- CPython 3.12's challenge-response handshake (multiprocessing/connection.py) -----
# The challenge is b"#CHALLENGE#" + b"{digest}" + 40 random bytes; the answer is
# b"{digest}" + HMAC(authkey, everything after #CHALLENGE#, digest) — the MAC covers the
# prefix too. A 16- or 20-byte message is the legacy form: a bare HMAC-MD5 answer, or a
# 20-byte challenge without prefix (CPython <= 3.11).

CHALLENGE = b"#CHALLENGE#"
WELCOME = b"#WELCOME#"
FAILURE = b"#FAILURE#"
MESSAGE_LENGTH = 40
MD5ONLY_MESSAGE_LENGTH = 20
MD5_DIGEST_LEN = 16
LEGACY_LENGTHS = (MD5ONLY_MESSAGE_LENGTH, MD5_DIGEST_LEN)
ALLOWED_DIGESTS = frozenset({b"md5", b"sha256", b"sha384", b"sha3_256", b"sha3_384"})
MAX_DIGEST_LEN = max(len(d) for d in ALLOWED_DIGESTS)


def digest_name_and_payload(message):
    """('', message) for the legacy form, else the digest named by the prefix and the rest."""
    if len(message) in LEGACY_LENGTHS:
        return "", message
    if message.startswith(b"{"):
        curly = message.find(b"}", 1, MAX_DIGEST_LEN + 2)
        if curly > 0:
            digest = message[1:curly]
            if digest in ALLOWED_DIGESTS:
                return digest.decode("ascii"), message[curly + 1:]
    raise AuthenticationError(
        "unsupported message length, missing digest prefix, or unsupported digest: %r" % message)


def create_response(authkey, message, digest_name=None):
    """The answer to challenge `message`: in the digest it names, or `digest_name`."""
    if digest_name is None:
        digest_name = digest_name_and_payload(message)[0]
    if not digest_name:
        return hmac.new(authkey, message, "md5").digest()
    mac = hmac.new(authkey, message, digest_name).digest()
    return b"{%s}%s" % (digest_name.encode("ascii"), mac)


def verify_challenge(authkey, message, response):
    """Accepts an answer in whichever allowed digest it names (bare: HMAC-MD5)."""
    response_digest, response_mac = digest_name_and_payload(response)
    response_digest = response_digest or "md5"
    try:
        expected = hmac.new(authkey, message, response_digest).digest()
    except ValueError:
        raise AuthenticationError("%r unsupported" % response_digest)
    if len(expected) != len(response_mac):
        raise AuthenticationError("expected %r of length %d got %d"
                                  % (response_digest, len(expected), len(response_mac)))
    if not hmac.compare_digest(expected, response_mac):
        raise AuthenticationError("digest received was wrong")


def deliver_challenge(conn, authkey, digest_name="sha256", hold_welcome=False):
    message = b"{%s}%s" % (digest_name.encode("ascii"), os.urandom(MESSAGE_LENGTH))
    conn.send_bytes(CHALLENGE + message)
    response = conn.recv_bytes(MAX_DIGEST_LEN + 256)
    try:
        verify_challenge(authkey, message, response)
    except AuthenticationError:
        conn.send_bytes(FAILURE)
        raise
    if hold_welcome:
        print("verified", flush=True)
        sys.stdin.readline()
    conn.send_bytes(WELCOME)


def answer_challenge(conn, authkey, digest_name=None):
    message = conn.recv_bytes(256)
    if not message.startswith(CHALLENGE):
        raise AuthenticationError("protocol error, expected challenge: %r" % message)
    message = message[len(CHALLENGE):]
    if len(message) < MD5ONLY_MESSAGE_LENGTH:
        raise AuthenticationError("challenge too short: %d bytes" % len(message))
    conn.send_bytes(create_response(authkey, message, digest_name))
    if conn.recv_bytes(256) != WELCOME:
        raise AuthenticationError("digest sent was rejected")


# --- addresses ------------------------------------------------------------------------

def python_address(address):
    if address.startswith("tcp://"):
        host, _, port = address[len("tcp://"):].rpartition(":")
        return (host.strip("[]"), int(port))
    if address.startswith("unix:"):
        rest = address[len("unix:"):]
        if rest.startswith("@"):
            return "\0" + rest[1:]
        return rest[2:] if rest.startswith("//") else rest
    raise ValueError("not an ipckit address: %r" % address)


def ipckit_address(address):
    if isinstance(address, tuple):
        return "tcp://%s:%d" % address[:2]
    if isinstance(address, bytes):
        address = address.decode()
    if address.startswith("\0"):
        return "unix:@" + address[1:]
    return "unix://" + address


def family_of(address):
    return socket.AF_INET if isinstance(address, tuple) else socket.AF_UNIX


# --- the two sides --------------------------------------------------------------------

def announce(address):
    print("ADDRESS " + ipckit_address(address), flush=True)


def rejected(error):
    print("rejected: %s: %s" % (type(error).__name__, error), flush=True)


def refusal_missing(what):
    print("%s was accepted but had to be refused" % what, flush=True)
    sys.exit(3)


def connect312(address, authkey, answer_digest, challenge_digest, hold_welcome=False):
    sock = socket.socket(family_of(address))
    sock.connect(address)
    conn = Connection(sock.detach())
    try:
        if authkey is not None:
            answer_challenge(conn, authkey, answer_digest)
            deliver_challenge(conn, authkey, challenge_digest, hold_welcome)
    except BaseException:
        conn.close()
        raise
    return conn


def run_client(args, address, authkey, first):
    if first and (args.bad_key is not None or args.bad_digest is not None):
        key = args.bad_key.encode() if args.bad_key is not None else authkey
        try:
            if args.role == "client":
                Client(address, authkey=key).close()
            else:
                connect312(address, key, args.bad_digest, args.challenge_digest).close()
        except AuthenticationError as e:
            rejected(e)
        else:
            refusal_missing("the first connection")
    if args.role == "client":
        return Client(address, authkey=authkey)
    return connect312(address, authkey, args.digest, args.challenge_digest, args.hold_welcome)


def run_listener(args, address, authkey):
    if args.role == "listener":
        listener = Listener(address, authkey=authkey)
        announce(listener.address)
        try:
            for i in range(args.rejections):
                try:
                    listener.accept().close()
                except AuthenticationError as e:
                    rejected(e)
                else:
                    refusal_missing("connection %d" % (i + 1))
            return listener.accept()
        finally:
            listener.close()  # removes a socket file

    sock = socket.socket(family_of(address))
    try:
        sock.bind(address)
        sock.listen()
        announce(sock.getsockname())

        def accept():
            conn = Connection(sock.accept()[0].detach())
            try:
                if authkey is not None:
                    deliver_challenge(conn, authkey, args.challenge_digest)
                    answer_challenge(conn, authkey, args.digest)
            except BaseException:
                conn.close()
                raise
            return conn

        for i in range(args.rejections):
            try:
                accept().close()
            except AuthenticationError as e:
                rejected(e)
            else:
                refusal_missing("connection %d" % (i + 1))
        return accept()
    finally:
        sock.close()
        if isinstance(address, str) and not address.startswith("\0"):
            try:
                os.unlink(address)
            except FileNotFoundError:
                pass


def pattern(n):
    return bytes((i * 11 + 5) & 0xFF for i in range(n))


def converse(conn):
    while True:
        message = conn.recv_bytes()
        if message == b"bye":
            break
        conn.send_bytes(message[::-1])
    for n in (0, 3, 100000):
        conn.send_bytes(pattern(n))


def expect(conn, want):
    got = conn.recv_bytes()
    if got != want:
        raise AssertionError("expected %r, got %r" % (want, got[:100]))


def handles(conn):
    read_end, write_end = os.pipe()
    conn.send_bytes(b"handle follows")
    reduction.send_handle(conn, write_end, os.getppid())  # the pid matters on Windows only
    os.close(write_end)
    conn.send_bytes(b"handle sent")
    print("handle sent", flush=True)
    data = b""
    while chunk := os.read(read_end, 4096):  # until the receiver closes its copy
        data += chunk
    os.close(read_end)
    conn.send_bytes(b"python read: " + data)

    expect(conn, b"handle follows")
    fd = reduction.recv_handle(conn)
    expect(conn, b"handle sent")
    os.write(fd, b"written by python")
    os.close(fd)
    conn.send_bytes(b"done")


def main():
    signal.alarm(30)  # never outlive a test that went wrong
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=("client", "listener", "client312", "listener312"))
    parser.add_argument("address")
    parser.add_argument("--authkey")
    parser.add_argument("--bad-key")
    parser.add_argument("--bad-digest")
    parser.add_argument("--digest")
    parser.add_argument("--challenge-digest", default="sha256")
    parser.add_argument("--rejections", type=int, default=0)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--hold-welcome", action="store_true")
    parser.add_argument("--then", choices=("converse", "handles"), default="converse")
    args = parser.parse_args()

    address = python_address(args.address)
    authkey = args.authkey.encode() if args.authkey is not None else None
    for i in range(args.connections if args.role.startswith("client") else 1):
        if args.role.startswith("client"):
            conn = run_client(args, address, authkey, i == 0)
        else:
            conn = run_listener(args, address, authkey)
        with conn:
            if args.then == "converse":
                converse(conn)
            else:
                handles(conn)
    print("done", flush=True)


if __name__ == "__main__":
    main()
