"""What runs inside the sandbox: stdlib only, never imported by the studio.

``flows/sandbox/process.py`` passes this file's text to the base interpreter (``python -I -S -c``)
inside fresh user, mount, network and PID namespaces (``unshare``). It runs in two stages, each a
fresh interpreter:

``setup`` (root of the new user namespace, PID 1 of the new PID namespace) builds the root the
code will see: an empty tmpfs holding read-only binds of the system and Python directories, the
studio's own folders hidden under empty read-only tmpfs mounts, ``/dev/null``, ``/dev/zero``,
``/dev/random``, ``/dev/urandom`` and a small writable ``/tmp``, and no ``/proc``; it pivots into
that root, detaches the old one, drops every capability for good (the bounding set, the
securebits that would give root its powers back at exec, no_new_privs), sets the resource limits
and execs ``run``.

``run`` reads ``{"code": …, "inputs": {…}}`` from stdin, calls ``main(**inputs)``, and writes
one JSON line to stdout: ``{"ok": true, "result": {…}, "logs": "…"}`` or ``{"ok": false,
"error": "…"}`` (the user's exception with the lines of their code, or a limit that was hit).
What the code prints is collected (``logs``, capped), so it cannot corrupt that line.

Without capabilities the code cannot unmount what hides the studio's folders, and in any user
namespace it creates for itself those mounts are locked; with no network interface but a down
loopback it reaches nothing.
"""

import ctypes
import io
import json
import linecache
import os
import resource
import sys
import traceback

SETUP_FAILED = 70  # the exit status when the sandbox could not be built (a server problem)

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_RELATIME = 0x200000
MNT_DETACH = 0x2

PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
# NOROOT (and its lock): uid 0 gets no capabilities at exec; NO_SETUID_FIXUP, KEEP_CAPS_LOCKED,
# NO_CAP_AMBIENT_RAISE (each with its lock): none can come back another way.
SECUREBITS = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80
CAPABILITY_VERSION_3 = 0x20080522

# pivot_root has no libc wrapper.
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}

# statvfs flags that a bind remount must keep: the kernel refuses to drop them in a user namespace.
KEPT_FLAGS = {
    os.ST_NOSUID: MS_NOSUID,
    os.ST_NODEV: MS_NODEV,
    os.ST_NOEXEC: MS_NOEXEC,
    os.ST_NOATIME: MS_NOATIME,
    os.ST_NODIRATIME: MS_NODIRATIME,
    os.ST_RELATIME: MS_RELATIME,
}
DEVICES = ("null", "zero", "random", "urandom")
NAMESPACE_LIMITS = ("user", "mnt", "net", "pid", "ipc", "uts", "cgroup", "time")

libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    pass


def _check(result, what):
    if result != 0:
        errno = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(errno)}")


def _mount(source, target, fstype, flags, data=None):
    _check(
        libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def _bind_read_only(source, target):
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    _mount(source, target, None, MS_BIND | MS_REC)
    kept = os.statvfs(source).f_flag
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID
    for statvfs_flag, mount_flag in KEPT_FLAGS.items():
        if kept & statvfs_flag:
            flags |= mount_flag
    _mount(None, target, None, flags)


def _build_root(plan):
    root = plan["root"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("sandbox", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for path in plan["read_only"]:
        if os.path.islink(path):  # /bin -> usr/bin on merged-/usr systems
            os.makedirs(os.path.dirname(root + path), exist_ok=True)
            os.symlink(os.readlink(path), root + path)
        elif os.path.exists(path):
            _bind_read_only(path, root + path)
    # What a read-only bind above might still show (a project inside /usr, say): covered.
    for path in plan["hidden"]:
        if os.path.isdir(root + path):
            _mount("hidden", root + path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k")
    for device in DEVICES:
        target = f"{root}/dev/{device}"
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
        _mount(f"/dev/{device}", target, None, MS_BIND)
    os.makedirs(root + "/tmp")
    _mount("tmp", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, plan["tmp_options"])
    _mount(None, root, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    _no_more_namespaces()
    number = PIVOT_ROOT.get(os.uname().machine)
    if number is None:
        raise SetupError(f"no pivot_root for the {os.uname().machine} architecture")
    os.chdir(root)
    # pivot_root(".", "."): the old root ends up on top of the new one, then goes away.
    _check(libc.syscall(number, b".", b"."), "pivot_root")
    _check(libc.umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir("/tmp")


def _no_more_namespaces():
    """The code may create no namespace of its own (each is kernel surface it does not need).
    These limits belong to this user namespace; a kernel without them keeps the mounts locked."""
    for kind in NAMESPACE_LIMITS:
        try:
            with open(f"/proc/sys/user/max_{kind}_namespaces", "w") as limit:
                limit.write("0")
        except OSError:
            pass


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _drop_capabilities():
    cap = 0
    while libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    if cap == 0:
        raise SetupError("could not drop the capability bounding set")
    _check(libc.prctl(PR_SET_SECUREBITS, SECUREBITS, 0, 0, 0), "set securebits")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = _CapHeader(CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(libc.capset(ctypes.byref(header), data), "drop capabilities")
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "set no_new_privs")


def _limit(plan):
    """Lower each limit to the plan's (never above what the host already allows: raising a
    hard limit needs a capability these processes no longer have)."""
    memory = plan["memory_mb"] * 1024 * 1024
    cpu = plan["cpu_s"]
    for which, (soft, hard) in (
        (resource.RLIMIT_AS, (memory, memory)),
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_FSIZE, (plan["file_bytes"],) * 2),
        (resource.RLIMIT_NOFILE, (plan["open_files"],) * 2),
        (resource.RLIMIT_NPROC, (plan["processes"],) * 2),
        (resource.RLIMIT_CORE, (0, 0)),
    ):
        _, current = resource.getrlimit(which)
        if current != resource.RLIM_INFINITY:
            soft, hard = min(soft, current), min(hard, current)
        resource.setrlimit(which, (soft, hard))


def setup(plan_json):
    """Build the root, drop every capability, then fork: the child sets the limits and execs the
    code's interpreter; this process stays PID 1 of the namespace (so that the code's process is
    an ordinary one, which signals such as SIGXCPU end), reaps, and exits with how the code's
    process ended: its exit status, or 128 + the signal that ended it."""
    try:
        plan = json.loads(plan_json)
        _build_root(plan)
        _drop_capabilities()
    except (SetupError, OSError, ValueError) as exc:
        sys.stderr.write(f"sandbox setup failed: {exc}\n")
        sys.exit(SETUP_FAILED)
    child = os.fork()
    if child == 0:
        try:
            _limit(plan)
            python = plan["python"]
            run_args = ["run", json.dumps(plan["run"])]
            os.execve(python, [python, *plan["flags"], "-c", plan["source"], *run_args], {})
        except (OSError, ValueError) as exc:
            os.write(2, f"sandbox setup failed: {exc}\n".encode())
        os._exit(SETUP_FAILED)
    # Not dumpable: the code's process (same user) cannot ptrace its init.
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    os.close(0)
    os.close(1)
    while True:  # reaps orphans too: this is the namespace's init
        pid, status = os.wait()
        if pid == child:
            break
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


# --- the run stage --------------------------------------------------------------------------

FILENAME = "<code>"


class _Logs(io.TextIOBase):
    """What the code prints, up to ``limit`` characters; the rest is counted, not kept."""

    def __init__(self, limit):
        self.limit = limit
        self.parts = []
        self.size = 0
        self.dropped = 0

    def writable(self):
        return True

    def write(self, text):
        room = self.limit - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(len(text), room)
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def text(self):
        tail = f"\n… {self.dropped:,} more characters not kept" if self.dropped else ""
        return "".join(self.parts) + tail


def _user_error(exc):
    """The exception as the user should read it: its type and message, and where in their code."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == FILENAME]
    message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    if isinstance(exc, SyntaxError) and exc.filename == FILENAME:
        return f"line {exc.lineno}: {message}"
    where = [
        f"line {f.lineno}, in {f.name}" + (f": {f.line.strip()}" if f.line else "")
        for f in frames[-5:]
    ]
    return "\n".join([*where, message]) if where else message


def run(limits):
    result_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    logs = _Logs(limits["log_chars"])
    sys.stdout = sys.stderr = logs
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.dup2(1, 2)

    def answer(**payload):
        payload["logs"] = logs.text()
        text = json.dumps(payload, ensure_ascii=False, allow_nan=False)
        if len(text.encode()) > limits["result_bytes"]:
            size = limits["result_bytes"] // 1024
            text = json.dumps({"ok": False, "error": f"the result is larger than {size:,} kB"})
        result_out.write(text + "\n")
        result_out.flush()

    try:
        request = json.loads(sys.stdin.read())
        code = request["code"]
        linecache.cache[FILENAME] = (len(code), None, code.splitlines(True), FILENAME)
        namespace = {"__name__": "__sandbox__", "__builtins__": __builtins__}
        exec(compile(code, FILENAME, "exec"), namespace)
        main = namespace.get("main")
        if not callable(main):
            answer(ok=False, error="the code defines no function main")
            return
        result = main(**request["inputs"])
    except MemoryError:
        limit = limits["memory_mb"]
        answer(ok=False, error=f"the code ran out of memory (the limit is {limit} MB)")
        return
    except BaseException as exc:  # the user's own failure, SystemExit included
        answer(ok=False, error=_user_error(exc))
        return
    if not isinstance(result, dict):
        answer(ok=False, error=f"main must return a dict of outputs, not {type(result).__name__}")
        return
    try:
        answer(ok=True, result=result)
    except (TypeError, ValueError) as exc:
        answer(ok=False, error=f"main returned something that is not JSON: {exc}")


if __name__ == "__main__":
    if sys.argv[1] == "setup":
        setup(sys.argv[2])
    else:
        run(json.loads(sys.argv[2]))
