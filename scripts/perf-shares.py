#!/usr/bin/env python3
"""Where a process's time goes, from a `perf record -g` file: shares of samples in the kernel
(by what it was doing) and in user space (by library). See BENCHMARKS.md, "Profiles".

    scripts/perf-shares.py intake.data
"""
import collections
import re
import subprocess
import sys

# First match wins, searched in the whole kernel stack of a sample.
KERNEL = [
    ("futex", "futex: threads waking and waiting for each other"),
    ("eventfd_write", "eventfd: waking the async runtime"),
    ("fsync", "fsync / fdatasync"),
    ("epoll_wait", "epoll_wait: idle, waiting for I/O"),
    ("pwrite", "file writes"),
    ("pread", "file reads"),
    ("tcp_", "loopback TCP"),
    ("sendto", "loopback TCP"),
    ("recvfrom", "loopback TCP"),
    ("exit_to_user_mode_loop", "rescheduled on return to user space (CPU contention)"),
    ("page_fault", "page faults"),
    ("do_anonymous_page", "page faults"),
]
# By symbol name, for samples in the binary itself.
USER = [
    ("sqlx", "sqlx"), ("flume", "flume (sqlx's SQLite channel)"), ("tokio", "tokio"),
    ("hyper", "hyper / axum / tower"), ("axum", "hyper / axum / tower"), ("tower", "hyper / axum / tower"),
    ("serde", "serde / JSON"), ("handlebars", "handlebars"), ("tracing", "tracing"), ("apalis", "apalis"),
    ("redis", "redis"), ("reqwest", "reqwest"), ("futures", "futures"), ("safereach::", "safereach's own code"),
]


def user_group(symbol, dso):
    if "libc" in dso:
        return "libc: malloc/free, memcpy, locks"
    if "::" not in symbol and re.match(r"^[a-z][A-Za-z0-9_.]*$", symbol):
        return "SQLite (C)"
    for key, name in USER:
        if key in symbol:
            return name
    return "other Rust (std, alloc, collections, closures)"


def main(path):
    script = subprocess.run(["perf", "script", "-i", path, "-F", "comm,ip,sym,dso"], capture_output=True, text=True, check=True)
    where, threads, kernel, user = (collections.Counter() for _ in range(4))
    total = 0
    for sample in script.stdout.split("\n\n"):
        lines = [line.strip() for line in sample.strip().split("\n") if line.strip()]
        if len(lines) < 2:
            continue
        total += 1
        threads[re.sub(r"[\d-]+$", "", lines[0].split()[0])] += 1
        frames = lines[1:]
        if "[kernel.kallsyms]" in frames[0]:
            where["kernel"] += 1
            stack = " ".join(frames)
            kernel[next((name for key, name in KERNEL if key in stack), "other kernel")] += 1
            continue
        match = re.match(r"\S+ (.*) \((.*)\)$", frames[0])
        symbol, dso = (re.sub(r"\+0x[0-9a-f]+$", "", match.group(1)), match.group(2)) if match else ("", "")
        where["user: libc" if "libc" in dso else "user: the binary"] += 1
        user[user_group(symbol, dso)] += 1
    print(f"{path}: {total} samples")
    for title, counter in [("where", where), ("threads", threads), ("kernel", kernel), ("user", user)]:
        print(f"  {title}")
        for name, n in counter.most_common(10):
            print(f"    {100 * n / max(total, 1):5.1f} %  {name}")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        main(arg)
