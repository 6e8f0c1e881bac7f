"""What runs inside the sandbox: stdlib only, never imported by the studio.

``flows/runtime/sandbox/process.py`` passes this file's text to the base interpreter
(``python -I -S -c``). It runs in three stages:

``enter`` (the worker's user, outside) joins the call's cgroup when there is one, makes new
user, mount, network, PID and IPC namespaces and maps the user ids: when the worker is root, a
helper that stays outside maps root to root and the code's user to an unprivileged id of the host
(root's processes escape ``RLIMIT_NPROC``; an unprivileged user's do not); otherwise the worker's
own id is root inside. It then forks the namespace's init and exits as that did.

``setup`` (that init: PID 1 of the new PID namespace) builds the root the code will see: an empty
tmpfs holding read-only binds of the interpreter, the libraries it loads, its standard library
(installed packages hidden) and libseccomp, the studio's own folders hidden under empty read-only
tmpfs mounts, ``/dev/null``, ``/dev/zero``, ``/dev/random``, ``/dev/urandom`` and a small
writable ``/tmp``, and no ``/proc``; it pivots into that root, detaches the old one, becomes the
code's user, drops every capability for good (the bounding set, the securebits that would give
root its powers back at exec, no_new_privs), sets the resource limits and execs ``run``.

``run`` installs the seccomp filter, then reads ``{"code": …, "inputs": {…}}`` from stdin, calls
``main(**inputs)``, and writes one JSON line to stdout: ``{"ok": true, "result": {…}, "logs":
"…"}`` or ``{"ok": false, "error": "…"}`` (the user's exception with the lines of their code, or
a limit that was hit). What the code prints is collected (``logs``, capped), so it cannot corrupt
that line.

The filter refuses new processes and programs (``fork``, ``clone`` without ``CLONE_THREAD``,
``execve``), so the sandbox is one process whose ``RLIMIT_AS`` and ``RLIMIT_CPU`` bound all of it
(threads share both), and ``RLIMIT_NPROC`` bounds its threads. It also refuses the system calls
Python code never needs (ptrace, mounts, namespaces, keys, modules, BPF, io_uring, sockets other
than ``AF_UNIX``…). Without capabilities the code cannot unmount what hides the studio's
folders; with no network interface but a down loopback it reaches nothing.
"""

import ctypes
import io
import json
import linecache
import os
import resource
import signal
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

CLONE_THREAD = 0x00010000
CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACES = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC
PR_SET_PDEATHSIG = 1
# The code's user inside the namespaces when the worker is root (0 stays root, for setup).
CODE_ID = 1

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_FLTATR_ACT_BADARCH = 1
SCMP_CMP_NE = 1
SCMP_CMP_MASKED_EQ = 7
EPERM = 1
ENOSYS = 38
AF_UNIX = 1
# clone's flags are its first argument, except on s390.
CLONE_FLAGS_ARG = {"s390x": 1, "s390": 1}
# Refused with EPERM (PermissionError in Python). A name this architecture lacks is skipped.
DENIED = (
    # New processes and programs: the sandbox stays one process, bounded whole by its rlimits.
    *("fork", "vfork", "execve", "execveat"),
    # Other processes, and the kernel's tracing and debugging surfaces.
    *("ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"),
    *("perf_event_open", "bpf", "userfaultfd", "lookup_dcookie", "syslog"),
    # Namespaces and mounts (the ones that hide the studio's folders stay).
    *("unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount"),
    *("open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr"),
    *("name_to_handle_at", "open_by_handle_at", "quotactl", "quotactl_fd"),
    # Keys, kernel modules, and the machine itself.
    *("keyctl", "add_key", "request_key", "init_module", "finit_module", "delete_module"),
    *("kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "acct", "vhangup"),
    *("settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname"),
    *("setdomainname", "iopl", "ioperm", "personality", "uselib", "mknod", "mknodat"),
    # Memory the address-space limit does not count, and a ring whose work this filter
    # never sees.
    *("memfd_create", "memfd_secret", "shmget", "msgget", "semget"),
    *("io_uring_setup", "io_uring_enter", "io_uring_register"),
)

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
        if os.path.exists(path):
            _bind_read_only(path, root + path)
    # The links met on the way to them (/lib64 -> usr/lib64 and the like), so that the paths
    # the interpreter and the loader ask for lead there.
    for path, target in plan["links"]:
        if not os.path.lexists(root + path):
            os.makedirs(os.path.dirname(root + path), exist_ok=True)
            os.symlink(target, root + path)
    # What a read-only bind above might still show (installed packages in the standard library's
    # folder, a project inside /usr): covered.
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


def _drop_capabilities(code_id):
    """Drop every capability for good; with ``code_id``, become that user first (the securebits
    keep the capabilities across the switch, so the last step drops them all the same)."""
    cap = 0
    while libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    if cap == 0:
        raise SetupError("could not drop the capability bounding set")
    _check(libc.prctl(PR_SET_SECUREBITS, SECUREBITS, 0, 0, 0), "set securebits")
    if code_id:
        os.setgroups([])
        os.setresgid(code_id, code_id, code_id)
        os.setresuid(code_id, code_id, code_id)
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


def _setup_failed(problem):
    """A server problem, not the code's: the studio refuses to run code here and says why."""
    os.write(2, f"sandbox setup failed: {problem}\n".encode())
    os._exit(SETUP_FAILED)


def _exit_as(status):
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


def _write(path, text):
    descriptor = os.open(path, os.O_WRONLY)
    try:
        os.write(descriptor, text.encode())  # one write: the kernel takes id maps in one
    finally:
        os.close(descriptor)


def _real_root():
    """Root of the host (the initial user namespace), whose processes RLIMIT_NPROC spares; root
    of a container's own user namespace is an unprivileged user of the host."""
    with open("/proc/self/uid_map") as ids:
        return os.getuid() == 0 and ids.read().split() == ["0", "0", "4294967295"]


def _make_namespaces(id_base):
    """Unshare the namespaces and map the ids; return the id the code runs as inside."""
    uid, gid = os.getuid(), os.getgid()
    if not _real_root():
        # Only this user can be mapped, and the kernel applies RLIMIT_NPROC to it.
        _check(libc.unshare(NAMESPACES), "create namespaces")
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"0 {uid} 1")
        _write("/proc/self/gid_map", f"0 {gid} 1")
        return 0
    # Root: mapping a second id takes CAP_SETUID outside, so a helper forked before the unshare
    # (it stays outside) writes the maps once this process is inside. The code's host id is
    # unique to the call (this process's id is), so no other process shares its count.
    host_id = id_base + os.getpid()
    ready, go = os.pipe()
    helper = os.fork()
    if helper == 0:
        os.close(go)
        parent = os.getppid()
        try:
            if os.read(ready, 1) != b"1":
                os._exit(1)
            for kind in ("uid", "gid"):
                _write(f"/proc/{parent}/{kind}_map", f"0 0 1\n{CODE_ID} {host_id} 1\n")
        except BaseException:  # a forked copy: it must never return into the caller
            os._exit(1)
        os._exit(0)
    os.close(ready)
    try:
        _check(libc.unshare(NAMESPACES), "create namespaces")
        os.write(go, b"1")
    finally:
        os.close(go)
        _, status = os.waitpid(helper, 0)
    if status != 0:
        raise SetupError("could not map the sandbox's user ids")
    return CODE_ID


def enter(plan_json):
    """Join the call's cgroup, make the namespaces, fork their init (``setup``) and exit as it
    did. Its own process group is killed as one by the worker at the deadline."""
    try:
        plan = json.loads(plan_json)
        if plan["cgroup"]:
            _write(os.path.join(plan["cgroup"], "cgroup.procs"), "0")
        plan["code_id"] = _make_namespaces(plan["id_base"])
    except (SetupError, OSError, ValueError) as exc:
        _setup_failed(exc)
    init = os.fork()
    if init == 0:
        try:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            setup(plan)  # never returns
        finally:
            os._exit(SETUP_FAILED)
    _, status = os.waitpid(init, 0)
    _exit_as(status)


def setup(plan):
    """Build the root, become the code's user, drop every capability, then fork: the child sets
    the limits and execs the code's interpreter; this process stays PID 1 of the namespace (so
    that the code's process is an ordinary one, which signals such as SIGXCPU end), reaps, and
    exits with how the code's process ended: its exit status, or 128 + the signal that ended
    it."""
    try:
        _build_root(plan)
        _drop_capabilities(plan["code_id"])
    except (SetupError, OSError, ValueError) as exc:
        _setup_failed(exc)
    # Not dumpable: the code's process (same user) cannot ptrace its init.
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    child = os.fork()
    if child == 0:
        try:
            _limit(plan)
            python = plan["python"]
            run_args = ["run", json.dumps(plan["run"])]
            argv = [python, *plan["flags"], "-c", plan["source"], *run_args]
            os.execve(python, argv, plan["env"])
        except BaseException as exc:  # a forked copy: it must never return into the caller
            _setup_failed(exc)
    os.close(0)
    os.close(1)
    while True:  # reaps orphans too: this is the namespace's init
        pid, status = os.wait()
        if pid == child:
            break
    _exit_as(status)


# --- the seccomp filter ---------------------------------------------------------------------


class _ArgCmp(ctypes.Structure):  # libseccomp's struct scmp_arg_cmp
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def _libseccomp(path):
    try:
        lib = ctypes.CDLL(path)
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p,
            ctypes.c_uint32,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.POINTER(_ArgCmp),
        ]
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError) as exc:
        raise SetupError(f"libseccomp cannot be used: {exc}") from None
    return lib


def _seccomp(path):
    """Install the filter on this process; the threads it starts inherit it. Nothing can
    remove it."""
    lib = _libseccomp(path)
    context = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not context:
        raise SetupError("seccomp_init failed")

    def refuse(name, errno, *compare):
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number < 0:
            return  # not a system call of this architecture
        args = (_ArgCmp * len(compare))(*compare) if compare else None
        action = SCMP_ACT_ERRNO | errno
        result = lib.seccomp_rule_add_array(context, action, number, len(compare), args)
        if result != 0:
            raise SetupError(f"seccomp rule for {name}: {os.strerror(-result)}")

    try:
        # Another architecture's system calls (32-bit ones on a 64-bit kernel) end the process;
        # a libseccomp too old for that setting kills the calling thread instead.
        lib.seccomp_attr_set(context, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)
        for name in DENIED:
            refuse(name, EPERM)
        flags = CLONE_FLAGS_ARG.get(os.uname().machine, 0)
        refuse("clone", EPERM, _ArgCmp(flags, SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0))
        # clone3's flags are behind a pointer the filter cannot read: "no such call" makes the
        # C library start threads with clone, which the rule above sees.
        refuse("clone3", ENOSYS)
        refuse("socket", EPERM, _ArgCmp(0, SCMP_CMP_NE, AF_UNIX, 0))
        result = lib.seccomp_load(context)
        if result != 0:
            raise SetupError(f"seccomp_load: {os.strerror(-result)}")
    finally:
        lib.seccomp_release(context)


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
    try:
        _seccomp(limits["libseccomp"])
    except SetupError as exc:
        _setup_failed(exc)
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
    if sys.argv[1] == "enter":
        enter(sys.argv[2])
    else:
        run(json.loads(sys.argv[2]))
