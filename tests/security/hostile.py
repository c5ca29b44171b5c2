"""The hostile user module every security test runs: ``input["do"]`` picks the attack.

User code runs inside the Python runner, which keeps the protocol's stdout private (fd 1 points
at stderr). An attacker can still reach it: the runner is ``__main__`` and holds the fd in
``_PROTOCOL_FD``; :func:`_proto` takes it from there, as hostile code would.
"""

from __future__ import annotations

HOSTILE = r'''
import ctypes
import ctypes.util
import errno
import os
import signal
import socket
import subprocess
import sys
import time

MiB = 1024 * 1024
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _proto():
    """The runner's private protocol stdout."""
    return sys.modules["__main__"]._PROTOCOL_FD


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _outcome(fn):
    """"ok" or the errno name (or exception name) of what fn raised."""
    try:
        fn()
    except OSError as exc:
        if not exc.errno:
            return type(exc).__name__
        return errno.errorcode.get(exc.errno, type(exc).__name__)
    except Exception as exc:
        return type(exc).__name__
    return "ok"


def _syscall(result):
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _isolated(fn):
    """_outcome(fn) in a forked child, so one attempt cannot change the next one's process."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.write(w, _outcome(fn).encode())
        os._exit(0)
    os.close(w)
    result = os.read(r, 100).decode()
    os.close(r)
    os.waitpid(pid, 0)
    return result


def _run(argv):
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    out = (done.stdout + done.stderr).decode(errors="replace")
    return {"rc": done.returncode, "out": out[-300:]}


def _ignore_term():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def fork_bomb(input):
    while True:  # every process forks forever and ignores failures
        try:
            os.fork()
        except OSError:
            pass


def memory_fast(input):
    hog = []
    while True:
        hog.append(b"x" * (16 * MiB))


def memory_slow(input):
    hog = []
    while True:
        hog.append(b"x" * (256 * 1024))
        time.sleep(0.005)


def spin(input):
    while True:
        pass


def spin_ignoring_term(input):
    _ignore_term()
    while True:
        pass


def daemon(input):
    # Classic double fork: the grandchild is re-parented, in a session of its own, and lives on.
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            code = "import signal, time\nsignal.signal(15, 1)\nwhile True: time.sleep(1)"
            os.execv(sys.executable, [sys.executable, "-c", code, input["marker"]])
        os._exit(0)
    os.wait()
    return "daemon started"


def stdout_flood(input):
    chunk = b"A" * MiB
    for _ in range(input["mib"]):
        _write_all(_proto(), chunk)
    return "flooded"


def stderr_flood(input):
    chunk = b"e" * MiB
    for _ in range(input["mib"]):
        _write_all(2, chunk)
    return "survived"


def endless_json(input):
    fd = _proto()
    _write_all(fd, b'{"ok": true, "output": [')
    chunk = b"1," * (input["chunk"] // 2)
    while True:
        _write_all(fd, chunk)
        time.sleep(input["pause"])


def newline_drip(input):
    # One long unterminated line, then newlines one by one: each looks like the end of a line.
    fd = _proto()
    _write_all(fd, b'{"ok": true, "output": "' + b"a" * (input["mib"] * MiB))
    while True:
        _write_all(fd, b"\n")
        time.sleep(0.001)


def garbage(input):
    _write_all(_proto(), os.urandom(input["size"]))
    sys.stdout.flush()
    os._exit(0)


def raw_line(input):
    # Whatever bytes the test sends (latin-1 coded), as the whole response, then exit 0.
    _write_all(_proto(), input["line"].encode("latin-1"))
    os._exit(0)


def nested_response(input):
    depth = input["depth"]
    _write_all(_proto(), b'{"ok": true, "output": ' + b"[" * depth + b"]" * depth + b"}\n")
    os._exit(0)


def nested_output(input):
    value = []
    for _ in range(input["depth"]):
        value = [value]
    return value


def close_stdout(input):
    os.close(_proto())
    os.close(1)
    time.sleep(0.5)
    return "still running after closing stdout"


def fill(input):
    written = 0
    chunk = b"f" * MiB
    try:
        with open(input["path"], "wb") as fh:
            while written < 4096 * MiB:
                fh.write(chunk)
                fh.flush()
                written += len(chunk)
    except OSError as exc:
        return {"errno": errno.errorcode[exc.errno], "written": written}
    return {"errno": None, "written": written}


def write_rootfs(input):
    def create(path):
        with open(path, "w") as fh:
            fh.write("x")

    return {path: _outcome(lambda p=path: create(p)) for path in input["paths"]}


def secrets(input):
    def read(path):
        with open(path, "rb") as fh:
            return fh.read()

    sockets = ["/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock"]
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    return {
        "shadow": _outcome(lambda: read("/etc/shadow")),
        "environ_1": read("/proc/1/environ").decode(errors="replace"),
        "cmdline_1": read("/proc/1/cmdline").decode(errors="replace"),
        "sockets": [p for p in sockets if os.path.exists(p)],
        "pids": pids,
        "uids": sorted({os.stat(f"/proc/{p}").st_uid for p in pids}),
    }


def network(input):
    def connect(host, port):
        with socket.create_connection((host, port), timeout=3):
            pass

    return {
        "outside": _outcome(lambda: connect("1.1.1.1", 443)),
        "outside_ip6": _outcome(lambda: connect("2606:4700:4700::1111", 443)),
        "gateway": _outcome(lambda: connect("172.17.0.1", 2375)),
        "gateway_http": _outcome(lambda: connect("172.17.0.1", 80)),
        "dns": _outcome(lambda: socket.getaddrinfo("example.com", 443)),
        "interfaces": sorted(os.listdir("/sys/class/net")),
    }


def escalate(input):
    CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000

    def unshare_syscall():
        _syscall(libc.unshare(CLONE_NEWUSER))

    def unshare_ns():
        _syscall(libc.unshare(CLONE_NEWNS))

    def mount_syscall():
        _syscall(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))

    def raw_socket():
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()

    def packet_socket():
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()

    return {
        "setuid_0": _isolated(lambda: os.setuid(0)),
        "su": _run(["su", "-c", "id -u", "root"]),
        "passwd": _run(["passwd", "-d", "root"]),
        "unshare_cmd": _run(["unshare", "-r", "id", "-u"]),
        "unshare_user": _isolated(unshare_syscall),
        "unshare_mount": _isolated(unshare_ns),
        "mount_cmd": _run(["mount", "-t", "tmpfs", "none", "/tmp"]),
        "mount_syscall": _isolated(mount_syscall),
        "raw_socket": _isolated(raw_socket),
        "packet_socket": _isolated(packet_socket),
        "euid": os.geteuid(),
    }


def ptrace(input):
    PTRACE_TRACEME, PTRACE_SEIZE = 0, 0x4206
    libc.ptrace.restype = ctypes.c_long
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]

    def traceme():
        _syscall(libc.ptrace(PTRACE_TRACEME, 0, None, None))

    def seize_init():
        # SEIZE, not ATTACH: attaching would SIGSTOP the runner (pid 1) and stall the call.
        _syscall(libc.ptrace(PTRACE_SEIZE, 1, None, None))

    return {
        "traceme": _isolated(traceme),
        "seize_pid1": _isolated(seize_init),
        "pids_visible": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    }


def length(input):
    return len(input["blob"])


def echo(input):
    return input


def execute(input):
    return globals()[input["do"]](input)
'''

FILES = {"/app/execute.py": HOSTILE}
