#!/usr/bin/env python3
"""bench/idle_conns.py: memory cost of idle keep-alive connections.

Opens N connections to HOST:PORT (plain or TLS), completes the handshake and
one request on each so that every connection is a real idle keep-alive one,
and reads the resident memory (VmRSS) of the server process(es) before and
after. Prints KiB per connection. It checks that every connection is still
open when the second figure is read, and exits 1 when any is not: a server
that closed connections would look cheaper than it is. Python stdlib only;
it never sends more than one request per connection.

Example: idle_conns.py --port 8443 --tls --pid 1234 -n 10000
"""

import argparse
import os
import resource
import selectors
import socket
import ssl
import sys
import time


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def children_of(pid):
    """Direct children (the workers of an nginx master)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:  # kernel without CONFIG_PROC_CHILDREN
        pass
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        # the 4th field, after the parenthesised command name, is the ppid
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(int(entry))
    return kids


def total_rss(pids, with_children):
    total = 0
    for pid in pids:
        total += rss_kib(pid)
        if with_children:
            total += sum(rss_kib(k) for k in children_of(pid))
    return total


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    inf = resource.RLIM_INFINITY
    if soft == inf or soft >= need:
        return
    try:  # a raised hard limit needs CAP_SYS_RESOURCE
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (need, hard if hard == inf else max(hard, need)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != inf and soft < need:
        sys.exit("idle_conns: open-file limit %d is below the %d needed; "
                 "lower -n or raise the hard limit" % (soft, need))


def read_response(sock):
    """Reads one Content-Length response; returns its status code."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before the response header")
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"transfer-encoding":
            raise ConnectionError("chunked answer: use a path with a "
                                  "fixed-length body")
    if length is None:
        raise ConnectionError("answer without Content-Length")
    while len(body) < length:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed inside the response body")
        body += data
    if len(body) != length:
        raise ConnectionError("more bytes than Content-Length")
    return status


def open_one(args, ctx):
    sock = socket.create_connection((args.host, args.port), timeout=30)
    if ctx is not None:
        sock = ctx.wrap_socket(sock, server_hostname=args.sni)
    if args.path:
        req = ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" %
               (args.path, args.sni)).encode()
        sock.sendall(req)
        status = read_response(sock)
        if status != 200:
            raise ConnectionError("answer %d to GET %s" % (status, args.path))
    return sock


def still_open(socks):
    """Counts the connections the server has not closed. A readable socket
    is either closed (EOF) or holds unexpected data; TLS sockets may only
    hold session tickets, which a non-blocking read consumes."""
    sel = selectors.DefaultSelector()
    for i, s in enumerate(socks):
        sel.register(s, selectors.EVENT_READ, i)
    closed = 0
    for key, _ in sel.select(timeout=0):
        s = socks[key.data]
        s.setblocking(False)
        try:
            data = s.recv(1)
            if not data:
                closed += 1
        except (ssl.SSLWantReadError, BlockingIOError):
            pass
        except OSError:
            closed += 1
        s.setblocking(True)
    sel.close()
    return len(socks) - closed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--sni", default="localhost")
    ap.add_argument("-n", "--conns", type=int, default=10000)
    ap.add_argument("--pid", type=int, action="append", required=True,
                    help="server process to measure (repeatable)")
    ap.add_argument("--children", action="store_true",
                    help="add the RSS of the pids' children (nginx workers)")
    ap.add_argument("--path", default="/small",
                    help="request sent on each connection ('' for none)")
    ap.add_argument("--settle", type=float, default=2.0,
                    help="seconds to wait before each RSS reading")
    ap.add_argument("--label", default="",
                    help="print a markdown table row with this label")
    args = ap.parse_args()
    if args.conns < 1:
        sys.exit("idle_conns: -n must be at least 1")

    raise_nofile(args.conns + 64)
    ctx = None
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE

    time.sleep(args.settle)
    before = total_rss(args.pid, args.children)
    socks = []
    t0 = time.monotonic()
    try:
        for i in range(args.conns):
            socks.append(open_one(args, ctx))
            if (i + 1) % 2000 == 0:
                print("idle_conns: %d open" % (i + 1), file=sys.stderr)
    except (OSError, ValueError) as e:
        sys.exit("idle_conns: connection %d failed: %s" % (len(socks) + 1, e))
    opened_in = time.monotonic() - t0
    time.sleep(args.settle)
    after = total_rss(args.pid, args.children)
    alive = still_open(socks)
    per_conn = (after - before) / args.conns
    print("idle_conns: %d %s connections opened in %.1f s, %d still open; "
          "RSS %.1f -> %.1f MiB, %.2f KiB per connection" %
          (args.conns, "TLS" if args.tls else "plain", opened_in, alive,
           before / 1024, after / 1024, per_conn), file=sys.stderr)
    if args.label:
        print("| %s | %d | %.1f | %.1f | %.2f |" %
              (args.label, args.conns, before / 1024, after / 1024, per_conn))
    for s in socks:
        s.close()
    if alive != args.conns:
        sys.exit("idle_conns: the server closed %d connections before the "
                 "measurement: the figure is not valid" % (args.conns - alive))
    return 0


if __name__ == "__main__":
    sys.exit(main())
