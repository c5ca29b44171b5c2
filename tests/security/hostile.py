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


# -- system calls the seccomp profile refuses (tests/security/test_seccomp.py) -----------------

# Numbers by machine: the generic table (aarch64) differs from x86_64 below 424.
_NR = {
    "x86_64": {"io_uring_setup": 425, "io_uring_enter": 426, "bpf": 321, "userfaultfd": 323,
               "perf_event_open": 298, "keyctl": 250, "add_key": 248, "kexec_load": 246,
               "clone3": 435, "clone": 56, "open_by_handle_at": 304, "name_to_handle_at": 303,
               "setns": 308, "unshare": 272, "personality": 135, "ptrace": 101},
    "aarch64": {"io_uring_setup": 425, "io_uring_enter": 426, "bpf": 280, "userfaultfd": 282,
                "perf_event_open": 241, "keyctl": 219, "add_key": 217, "kexec_load": 104,
                "clone3": 435, "clone": 220, "open_by_handle_at": 265, "name_to_handle_at": 264,
                "setns": 268, "unshare": 97, "personality": 92, "ptrace": 117},
}[os.uname().machine]
CLONE_NEWUSER, CLONE_NEWNS, SIGCHLD = 0x10000000, 0x00020000, 17
libc.syscall.restype = ctypes.c_long


def _sys(name, *args):
    """The raw system call ``name``; OSError on failure, else its result."""
    result = libc.syscall(ctypes.c_long(_NR[name]), *[ctypes.c_long(a) for a in args])
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _address(buffer):
    return ctypes.addressof(buffer)


def _io_uring_read():
    """Set up an io_uring, then read /etc/hostname through it (IORING_OP_READ)."""
    import mmap
    import struct

    params = ctypes.create_string_buffer(120)
    ring = _sys("io_uring_setup", 4, _address(params))
    sq_entries, cq_entries = struct.unpack_from("II", params, 0)
    sq_off = struct.unpack_from("IIIIIII", params, 40)  # head tail mask entries flags dropped array
    cq_off = struct.unpack_from("IIIIII", params, 80)  # head tail mask entries overflow cqes
    shared = mmap.MAP_SHARED
    rw = mmap.PROT_READ | mmap.PROT_WRITE
    sq = mmap.mmap(ring, sq_off[6] + sq_entries * 4, shared, rw, offset=0)
    cq = mmap.mmap(ring, cq_off[5] + cq_entries * 16, shared, rw, offset=0x8000000)
    sqes = mmap.mmap(ring, sq_entries * 64, shared, rw, offset=0x10000000)
    target = os.open("/etc/hostname", os.O_RDONLY)
    data = ctypes.create_string_buffer(256)
    # One IORING_OP_READ (22) entry: fd, offset 0, into data, 256 bytes.
    struct.pack_into("BBHiQQII", sqes, 0, 22, 0, 0, target, 0, _address(data), 256, 0)
    tail = struct.unpack_from("I", sq, sq_off[1])[0]
    mask = struct.unpack_from("I", sq, sq_off[2])[0]
    struct.pack_into("I", sq, sq_off[6] + (tail & mask) * 4, 0)
    struct.pack_into("I", sq, sq_off[1], tail + 1)
    _sys("io_uring_enter", ring, 1, 1, 1, 0, 0)  # submit 1, wait for 1 (GETEVENTS)
    result = struct.unpack_from("i", cq, cq_off[5] + 8)[0]
    if result < 0:
        raise OSError(-result, os.strerror(-result))
    if not data.raw[:result].strip():
        raise RuntimeError("io_uring read nothing")


def _userns_mount():
    _sys("unshare", CLONE_NEWUSER | CLONE_NEWNS)
    _syscall(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))


def _setns(kind):
    fd = os.open(f"/proc/1/ns/{kind}", os.O_RDONLY)
    _sys("setns", fd, 0)


def _bpf_prog_load():
    import struct

    insns = ctypes.create_string_buffer(struct.pack("<BBhiBBhi", 0xB7, 0, 0, 0, 0x95, 0, 0, 0))
    license = ctypes.create_string_buffer(b"GPL")
    # union bpf_attr for BPF_PROG_LOAD: a socket filter "r0 = 0; exit".
    fields = struct.pack("<IIQQ", 1, 2, _address(insns), _address(license))
    attr = ctypes.create_string_buffer(fields, 128)
    os.close(_sys("bpf", 5, _address(attr), 128))


def _perf_event_open():
    import struct

    attr = ctypes.create_string_buffer(struct.pack("<IIQ", 1, 128, 0), 128)  # software, cpu-clock
    os.close(_sys("perf_event_open", _address(attr), 0, -1, -1, 0))


def _keyring():
    _sys("keyctl", 1, 0)  # KEYCTL_JOIN_SESSION_KEYRING, an anonymous one


def _add_key():
    kind, description, payload = (ctypes.create_string_buffer(v) for v in (b"user", b"x", b"y"))
    # Into KEY_SPEC_PROCESS_KEYRING (-2).
    _sys("add_key", _address(kind), _address(description), _address(payload), 1, -2)


def _clone_raw(name, args):
    """A raw clone or clone3: the child, if any, leaves at once (no Python runs in it)."""
    pid = _sys(name, *args)
    if pid == 0:
        libc._exit(0)
    os.waitpid(pid, 0)


def _clone3_newuser():
    import struct

    fields = struct.pack("<QQQQQ", CLONE_NEWUSER, 0, 0, 0, SIGCHLD)  # flags ... exit_signal
    clone_args = ctypes.create_string_buffer(fields, 88)
    _clone_raw("clone3", (_address(clone_args), 88))


def _open_by_handle():
    import struct

    # The "shocker" handle: ext4's root inode (2) as a FILEID_INO32_GEN handle.
    handle = ctypes.create_string_buffer(struct.pack("<Ii", 8, 1) + struct.pack("<II", 2, 0))
    root = os.open("/", os.O_RDONLY)
    os.close(_sys("open_by_handle_at", root, _address(handle), os.O_RDONLY))


def _name_to_handle():
    path = ctypes.create_string_buffer(b"/etc/passwd")
    handle = ctypes.create_string_buffer(b"\x80" + b"\0" * 135)  # handle_bytes = 128
    mount_id = ctypes.c_int()
    _sys("name_to_handle_at", -100, _address(path), _address(handle), _address(mount_id), 0)


def _ptrace_sibling():
    """Seize a sibling process (another child of the task) with ptrace."""
    victim = subprocess.Popen(["sleep", "30"])
    try:
        return _isolated(lambda: _sys("ptrace", 0x4206, victim.pid, 0, 0))  # PTRACE_SEIZE
    finally:
        victim.kill()
        victim.wait()


def syscalls(input):
    """Each attack in its own child: "ok" or the errno name that refused it."""
    return {
        "io_uring_read": _isolated(_io_uring_read),
        "userns_mount": _isolated(_userns_mount),
        "clone_newuser": _isolated(lambda: _clone_raw("clone", (CLONE_NEWUSER | SIGCHLD, 0, 0, 0))),
        "clone3_newuser": _isolated(_clone3_newuser),
        **{f"setns_{k}": _isolated(lambda k=k: _setns(k)) for k in ("user", "mnt", "pid", "net")},
        "bpf_prog_load": _isolated(_bpf_prog_load),
        "userfaultfd": _isolated(lambda: os.close(_sys("userfaultfd", os.O_CLOEXEC))),
        "perf_event_open": _isolated(_perf_event_open),
        "keyctl": _isolated(_keyring),
        "add_key": _isolated(_add_key),
        "kexec_load": _isolated(lambda: _sys("kexec_load", 0, 0, 0, 0)),
        "personality_query": _isolated(lambda: _sys("personality", 0xFFFFFFFF)),
        "personality_no_aslr": _isolated(lambda: _sys("personality", 0x0040000)),
        "personality_exec": _isolated(lambda: _sys("personality", 0x0400000)),
        "ptrace_sibling": _ptrace_sibling(),
        "open_by_handle_at": _isolated(_open_by_handle),
        "name_to_handle_at": _isolated(_name_to_handle),
        "subprocess": _run(["true"])["rc"],
    }


def length(input):
    return len(input["blob"])


def echo(input):
    return input


def execute(input):
    return globals()[input["do"]](input)
'''

FILES = {"/app/execute.py": HOSTILE}
