"""Python's own multiprocessing.connection.Connection on an fd shared with ipckit.

Usage: python_connection_peer.py FD
Echo protocol: for each message received, send back its bytes reversed, until the
message b"bye"; then send messages of the sizes ipckit must read as Python frames them
(0, 1, 16384, 16385, 70000 bytes: Python concatenates header and payload below 16 KiB
and sends them separately above), then a msgpack-encoded dict (an ipckit struct), and close.
"""
import sys
from multiprocessing.connection import Connection

import msgpack

conn = Connection(int(sys.argv[1]))
while True:
    msg = conn.recv_bytes()
    if msg == b"bye":
        break
    conn.send_bytes(msg[::-1])
for n in (0, 1, 16384, 16385, 70000):
    conn.send_bytes(bytes((i * 7) & 0xFF for i in range(n)))
conn.send_bytes(msgpack.packb({"item": "tea", "quantity": 3, "price": None, "tags": ["green"]}, use_bin_type=True))
conn.close()
