"""Run untrusted generated code in a contained subprocess, and only there.

Containment comes from the kernel, never from Python-level checks:

1. **Namespaces** (`isolation="namespaces"`, what "auto" requires): new user, mount, network and PID namespaces.
   Inside, before the sample runs, the child `pivot_root`s into its temporary work folder and unmounts the old
   root, so no host file (not `/proc`, not the interpreter, not the folder around the work folder) is reachable
   at all; it then drops every capability (the bounding set too), sets `no_new_privs` and forbids nested user
   namespaces, so neither `chroot` tricks nor mounts can bring the host back. The network namespace has no
   interface but a downed loopback (the host's 127.0.0.1 is another namespace). Ending the PID namespace's first
   process kills every process in it, `setsid` daemons included, and a per-namespace `pid_max` caps forks.
2. **An unprivileged identity**: when greenprune runs as root, the child runs as a throwaway uid of its own, so
   RLIMIT_NPROC holds (the kernel exempts real root from it) and the run owns nothing of the caller's.
3. **Resource limits**: address space, CPU seconds, file size (stdout/stderr go to size-capped files), open
   files, processes; and a wall-clock timeout after which the whole process group is SIGKILLed.
4. **A guard** inside the child that disables process creation, signals, file removal and sockets at the Python
   level. Defence in depth only: `posix.*` and `_socket` bypass it, and containment never relies on it.

`isolation="auto"` refuses to run generated code when namespaces do not work here; the explicitly named
`isolation="unsafe-limits-only"` keeps layers 2-4 only (no file-system or network containment).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from greenprune._utils import progress
from greenprune.errors import GreenpruneError

PRELOAD = (
    "math", "re", "string", "itertools", "collections", "functools", "heapq", "bisect", "typing", "hashlib",
    "fractions", "decimal", "statistics", "operator", "copy", "random", "json", "datetime", "cmath", "array",
    "numbers", "enum", "dataclasses", "textwrap", "unicodedata", "struct", "calendar", "time",
)
ISOLATION_MODES = ("auto", "namespaces", "unsafe-limits-only")
UNSAFE_MODE = "unsafe-limits-only"
SETUP_MARK = "greenprune-sandbox-setup-failed:"
THROWAWAY_UIDS = (0x5A000000, 0x5AFFFFFF)  # a range no distribution hands out; one fresh uid per run

# Runs as trusted code in the child before the sample. Namespaced, it is three processes: P (the caller's
# identity, outside) forks C, which unshares the namespaces; P writes C's uid/gid maps (as root with a second,
# unprivileged uid inside); C forks G, the first process of the new PID namespace, which sets up containment and
# becomes the sample. Any step that does not hold fails closed (the sample never runs). Only G holds the set-up pipe
# and writes "ok" to it just before the sample starts, so a sample cannot pass itself off as a set-up failure.
_PRELUDE = r"""
import builtins, json, os, resource, sys
program, cfg = sys.argv[1], json.loads(sys.argv[2])
setup_fd = cfg["setup_fd"]
def fail(what):
    sys.stderr.write("SETUP_MARK " + what + "\n")
    sys.stderr.flush()
    os._exit(125)
with open(program, encoding="utf-8") as fh:
    source = fh.read()
for name in [*cfg["preload"], *(["shutil", "socket", "subprocess"] if cfg["guard"] else [])]:
    try:
        __import__(name)
    except Exception:
        pass
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def call(result, what):
    if result != 0:
        fail(what + ": " + os.strerror(ctypes.get_errno()))
def set_limits():
    for what, value in ((resource.RLIMIT_AS, cfg["memory_bytes"]), (resource.RLIMIT_CPU, cfg["cpu_seconds"]),
                        (resource.RLIMIT_FSIZE, cfg["file_bytes"]), (resource.RLIMIT_CORE, 0),
                        (resource.RLIMIT_NOFILE, 64), (resource.RLIMIT_NPROC, cfg["nproc"])):
        try:
            resource.setrlimit(what, (value, value))
        except (ValueError, OSError) as exc:
            fail("set resource limit %s: %s" % (what, exc))
def become(uid):
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # leaving uid 0 clears every capability
def own_keyring():
    # a fresh anonymous session keyring: the caller's keys are not the sample's to read
    if libc.syscall(cfg["sys_keyctl"], 1, None) < 0:  # KEYCTL_JOIN_SESSION_KEYRING, no name
        fail("join a fresh session keyring: " + os.strerror(ctypes.get_errno()))
def wait_exit(pid):
    while True:
        try:
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        except ChildProcessError:
            return 1
        except InterruptedError:
            continue
if cfg["namespaced"]:
    CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x2000000, 0x4000000, 0x8000000
    CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
    unshared_r, unshared_w = os.pipe()
    mapped_r, mapped_w = os.pipe()
    c = os.fork()
    if c:  # P: write C's maps from outside, then wait
        for fd in (unshared_w, mapped_r, setup_fd):
            os.close(fd)
        if os.read(unshared_r, 1) != b"u":
            os._exit(wait_exit(c))
        try:
            if cfg["outer_uid"] is not None:  # root: ns root is root (to finish loading), inside a throwaway uid
                uids = gids = "0 0 1\n%d %d 1\n" % (cfg["inner_uid"], cfg["outer_uid"])
            else:
                with open("/proc/%d/setgroups" % c, "w") as fh:
                    fh.write("deny")
                uids, gids = "0 %d 1\n" % os.getuid(), "0 %d 1\n" % os.getgid()
            with open("/proc/%d/uid_map" % c, "w") as fh:
                fh.write(uids)
            with open("/proc/%d/gid_map" % c, "w") as fh:
                fh.write(gids)
        except OSError as exc:
            os.kill(c, 9)
            fail("write the namespace's uid/gid maps: %s" % exc)
        os.write(mapped_w, b"g")
        os._exit(wait_exit(c))
    os.close(unshared_r)
    os.close(mapped_w)
    call(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
                      | CLONE_NEWCGROUP), "unshare namespaces")
    os.write(unshared_w, b"u")
    if os.read(mapped_r, 1) != b"g":
        os._exit(125)
    PR_SET_PDEATHSIG = 1
    known_r, known_w = os.pipe()
    g = os.fork()
    if g:  # C: tell the caller who the namespace's first process is, so it can be killed whatever it does
        os.close(setup_fd)
        with open(cfg["init_pid_file"], "w") as fh:  # before G's pivot_root moves C's root too
            fh.write(str(g))
        os.write(known_w, b"k")
        os._exit(wait_exit(g))
    libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
    if os.read(known_r, 1) != b"k":
        fail("the namespace's first process was not recorded")
    for fd in (known_r, known_w, unshared_w, mapped_r):
        os.close(fd)
    if os.getpid() != 1:
        fail("not the first process of the new PID namespace")
    inside = cfg["inner_uid"] if cfg["outer_uid"] is not None else 0
    MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 32, 4096, 16384, 1 << 18
    call(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make mounts private")
    call(libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None), "mount the namespace's /proc")
    for path, value in (("/proc/sys/kernel/pid_max", cfg["pid_max"]), ("/proc/sys/user/max_user_namespaces", 0)):
        try:
            with open(path, "w") as fh:
                fh.write(str(value))
        except OSError as exc:
            if path.endswith("max_user_namespaces"):
                fail("forbid nested user namespaces: %s" % exc)
            # kernels before 6.14 have one pid_max: RLIMIT_NPROC alone caps processes there
    work = cfg["workdir"].encode()
    size = ("size=%dm,mode=0755,uid=%d,gid=%d" % (cfg["disk_mb"], inside, inside)).encode()
    call(libc.mount(b"tmpfs", work, b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, size), "mount a size-capped tmpfs")
    os.chdir(cfg["workdir"])
    call(libc.syscall(cfg["sys_pivot_root"], b".", b"."), "pivot_root")
    call(libc.umount2(b".", 2), "unmount the old root")  # MNT_DETACH
    os.chdir("/")
    os.mkdir("/tmp")
    os.chown("/tmp", inside, inside)
    if sorted(os.listdir("/")) != ["tmp"]:
        fail("the old root is still visible")
    set_limits()
    PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() != 22:  # EINVAL: no such cap
            fail("drop capability %d from the bounding set" % cap)
    if cfg["outer_uid"] is not None:
        become(inside)
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]
    header = Header(0x20080522, 0)
    call(libc.capset(ctypes.byref(header), (Data * 2)()), "drop every capability")
    check = (Data * 2)()
    call(libc.capget(ctypes.byref(header), check), "read capabilities back")
    if any(d.effective or d.permitted or d.inheritable for d in check):
        fail("capabilities still held after capset")
    call(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)  # a credential change clears it
    own_keyring()
    del Header, Data, header, check
else:
    os.chdir(cfg["workdir"])
    set_limits()
    if cfg["outer_uid"] is not None:
        become(cfg["outer_uid"])
    own_keyring()
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
del libc, ctypes
for name in [m for m in sys.modules if m == "ctypes" or m.startswith(("ctypes.", "_ctypes"))]:
    del sys.modules[name]
if cfg["guard"]:
    shutil, socket, subprocess = sys.modules["shutil"], sys.modules["socket"], sys.modules["subprocess"]
    def _blocked(*args, **kwargs):
        raise PermissionError("disabled in the greenprune sandbox")
    for name in ("system", "popen", "fork", "forkpty", "vfork", "kill", "killpg", "setsid", "setpgid", "remove",
                 "unlink", "rmdir", "removedirs", "rename", "renames", "replace", "truncate", "chmod", "fchmod",
                 "lchmod", "chown", "fchown", "lchown", "chroot", "putenv", "unsetenv", "link", "symlink",
                 "execv", "execve", "execl", "execle", "execlp", "execlpe", "execvp", "execvpe", "spawnv",
                 "spawnve", "spawnl", "spawnle", "posix_spawn", "posix_spawnp", "setuid", "setgid", "fchdir"):
        if hasattr(os, name):
            setattr(os, name, _blocked)
    for name in ("rmtree", "move", "chown", "copy", "copy2", "copyfile", "copytree"):
        setattr(shutil, name, _blocked)
    subprocess.Popen = _blocked
    subprocess.run = subprocess.call = subprocess.check_call = subprocess.check_output = _blocked
    socket.socket = socket.create_connection = socket.create_server = socket.socketpair = _blocked
    builtins.exit = builtins.quit = _blocked
    for name in ("multiprocessing", "ctypes", "_ctypes", "pty", "resource", "signal"):
        sys.modules[name] = None
sys.argv = ["program.py"]
namespace = {"__name__": "__main__", "__builtins__": __builtins__}
os.write(setup_fd, b"ok")
os.close(setup_fd)
del setup_fd
exec(compile(source, "program.py", "exec"), namespace)
""".replace("SETUP_MARK", SETUP_MARK)

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
_SYS_KEYCTL = {"x86_64": 250, "aarch64": 219, "arm64": 219, "riscv64": 219, "ppc64le": 288, "s390x": 280}


class SandboxUnavailableError(GreenpruneError, RuntimeError):
    """The requested isolation does not work on this machine; generated code was not run."""


@dataclass
class SandboxConfig:
    """Limits of one sandboxed run, and the isolation it needs (see the module docstring)."""

    timeout: float = 5.0  # wall-clock seconds
    memory_mb: int = 1024  # address-space cap
    cpu_seconds: int | None = None  # default: ceil(timeout) + 1
    file_mb: int = 16  # largest file (and captured output) the sample may write
    disk_mb: int = 64  # namespaced: the work folder is a tmpfs of this size
    # processes the sample may have at once; memory_mb caps each, so a run holds at most memory_mb × (this + 2)
    max_processes: int = 4
    pid_max: int = 301  # per-PID-namespace cap (the kernel's minimum is 301)
    isolation: str = "auto"  # "auto" | "namespaces" | "unsafe-limits-only"
    guard: bool = True
    preload: tuple[str, ...] = PRELOAD
    output_chars: int = 4000  # stdout/stderr kept in the result

    def __post_init__(self) -> None:
        if self.isolation not in ISOLATION_MODES:
            raise ValueError(f"sandbox isolation must be one of {', '.join(ISOLATION_MODES)}, got {self.isolation!r}")
        for name in ("timeout", "memory_mb", "file_mb", "disk_mb", "max_processes", "output_chars"):
            if getattr(self, name) <= 0:
                raise ValueError(f"SandboxConfig.{name} must be positive, got {getattr(self, name)!r}")


@dataclass
class SandboxResult:
    status: str  # "passed" | "failed" | "timeout"
    returncode: int | None
    seconds: float
    stdout: str = ""
    stderr: str = ""
    layers: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def _interpreter() -> str:
    """The real interpreter behind a venv: with `-I -S` the venv adds nothing to the child."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def _process_uids() -> Counter[int]:
    """How many processes each uid runs now (one walk over /proc)."""
    uids: Counter[int] = Counter()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                uids[entry.stat().st_uid] += 1
    return uids


def _throwaway_uid() -> int | None:
    """A fresh uid for one run when we are root (None otherwise): no process of it exists, so killing all its
    processes afterwards is safe, and the kernel applies RLIMIT_NPROC to it (it exempts real root)."""
    if os.geteuid() != 0:
        return None
    taken = _process_uids()
    low, high = THROWAWAY_UIDS
    while True:
        uid = low + secrets.randbelow(high - low)
        if uid not in taken:
            return uid


@functools.lru_cache(maxsize=1)
def namespace_problem() -> str | None:
    """Why namespace isolation does not work here (None when it does). A trivial program is run through the whole
    set-up, so a kernel or container that allows user namespaces but not mounts, pivot_root or capset counts too."""
    if sys.platform != "linux":
        return f"namespaces are Linux-only (this is {sys.platform})"
    if os.uname().machine not in _SYS_PIVOT_ROOT:
        return f"pivot_root's system call number is not known for {os.uname().machine}"
    try:
        result = _run("print('contained')\n", SandboxConfig(timeout=30, isolation="namespaces", guard=False), True)
    except SandboxUnavailableError as exc:
        return str(exc)
    except OSError as exc:
        return f"starting the sandbox failed: {exc}"
    if result.status == "passed" and result.stdout.strip() == "contained":
        return None
    detail = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit status {result.returncode}"
    return f"a trivial program did not run contained ({result.status}: {detail})"


def namespaces_available() -> bool:
    """Whether user+mount+net+PID namespaces with pivot_root work here (checked once per process)."""
    return namespace_problem() is None


def _refusal(reason: str) -> SandboxUnavailableError:
    return SandboxUnavailableError(
        f"generated code is only run under namespace isolation, which does not work here: {reason}. Allow "
        "unprivileged user namespaces (e.g. sysctl kernel.unprivileged_userns_clone=1 or "
        "kernel.apparmor_restrict_unprivileged_userns=0, or run outside a container that blocks them), or accept "
        "running it with resource limits only and no file-system or network containment: "
        f"SandboxConfig(isolation={UNSAFE_MODE!r}) in Python, `--sandbox {UNSAFE_MODE}` on the command line."
    )


def _namespaced(config: SandboxConfig) -> bool:
    if config.isolation == UNSAFE_MODE:
        return False
    problem = namespace_problem()
    if problem is not None:
        raise _refusal(problem)
    return True


def _layers(config: SandboxConfig, namespaced: bool, throwaway: bool) -> list[str]:
    layers = (["namespaces:user,mount,net,pid", "pivot_root", "caps-dropped", "no_new_privs", "pid_max"]
              if namespaced else [UNSAFE_MODE])
    if throwaway:
        layers.append("throwaway-uid")
    layers += ["RLIMIT_NPROC", "rlimits", "timeout", "process-group-kill"]
    if config.guard:
        layers.append("guard")
    return layers


def isolation_layers(config: SandboxConfig | None = None) -> list[str]:
    """The layers a run under `config` uses here (raises SandboxUnavailableError like `run_program`)."""
    config = config or SandboxConfig()
    return _layers(config, _namespaced(config), os.geteuid() == 0)


def run_program(source: str, config: SandboxConfig | None = None) -> SandboxResult:
    """Run `source` as a script in the sandbox; passed = exit code 0 within the time limit."""
    config = config or SandboxConfig()
    return _run(source, config, _namespaced(config))


_KILL_ALL = """
import os, sys
uid = int(sys.argv[1])
os.setgroups([])
os.setresgid(uid, uid, uid)
os.setresuid(uid, uid, uid)
for _ in range(100):
    try:
        os.kill(-1, 9)
    except ProcessLookupError:
        break
"""


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of the throwaway `uid` (ours alone): `kill(-1)` from that uid, until none is left."""
    for _ in range(20):
        subprocess.run([_interpreter(), "-I", "-S", "-c", _KILL_ALL, str(uid)], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30, check=False)
        if _process_uids()[uid] == 0:
            return
        time.sleep(0.05)


def _kill_pid(pid_file: Path) -> None:
    """SIGKILL the namespace's first process, which takes the whole PID namespace with it. The pid is checked to
    still be a namespace's first process (NSpid ends in 1), so a recycled pid of another process is never hit."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text())
        status = Path(f"/proc/{pid}/status").read_text()
        nspid = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
        if len(nspid) >= 2 and nspid[-1] == "1":
            os.kill(pid, signal.SIGKILL)


def _tail(path: Path, chars: int) -> str:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 4 * chars))
        return fh.read().decode("utf-8", errors="replace")[-chars:]


INNER_UID = 1000  # the sample's uid inside the user namespace when greenprune runs as root


def _run(source: str, config: SandboxConfig, namespaced: bool) -> SandboxResult:
    outer = _throwaway_uid()
    root = Path(tempfile.mkdtemp(prefix="greenprune-sandbox-"))
    workdir = root / "work"
    (workdir / "tmp").mkdir(parents=True)
    program = root / "program.py"
    program.write_text(source, encoding="utf-8")
    if outer is not None:
        for path in (workdir, workdir / "tmp"):
            os.chown(path, outer, outer)
    init_pid = root / "init.pid"
    ready_r, ready_w = os.pipe()  # written by the prelude just before the sample starts, by nothing else
    cfg = {
        "preload": list(config.preload), "namespaced": namespaced, "guard": config.guard,
        "workdir": str(workdir), "pid_max": config.pid_max, "memory_bytes": config.memory_mb * 2**20,
        "cpu_seconds": config.cpu_seconds or int(config.timeout) + 1, "file_bytes": config.file_mb * 2**20,
        "sys_pivot_root": _SYS_PIVOT_ROOT.get(os.uname().machine, -1), "outer_uid": outer, "inner_uid": INNER_UID,
        "sys_keyctl": _SYS_KEYCTL.get(os.uname().machine, -1), "disk_mb": config.disk_mb,
        "init_pid_file": str(init_pid), "setup_fd": ready_w,
        # a fresh user namespace or a fresh uid counts only this run's processes; otherwise the user's others too
        "nproc": config.max_processes + (2 if namespaced or outer is not None else _process_uids()[os.getuid()]),
    }
    cmd = [_interpreter(), "-I", "-S", "-c", _PRELUDE, str(program), json.dumps(cfg)]
    home = "/" if namespaced else str(workdir)
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": os.path.join(home, "tmp"), "LANG": "C.UTF-8",
           "PYTHONHASHSEED": "0"}
    out_path, err_path = root / "stdout", root / "stderr"
    start = time.perf_counter()
    status, code, started = "failed", None, False
    try:
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=root, env=env,
                                        start_new_session=True, pass_fds=(ready_w,))
            finally:
                os.close(ready_w)
            try:
                code = proc.wait(timeout=config.timeout)
                status = "passed" if code == 0 else "failed"
            except subprocess.TimeoutExpired:
                status = "timeout"
            finally:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)  # stray children too, whether or not the main one ended
                if proc.poll() is None:
                    proc.wait()
                if namespaced:
                    _kill_pid(init_pid)
                if outer is not None:
                    _kill_uid(outer)  # what left the process group (setsid) dies too
                started = os.read(ready_r, 2) == b"ok"  # every writer is gone now: no blocking
        seconds = time.perf_counter() - start
        stdout = _tail(out_path, config.output_chars)
        stderr = _tail(err_path, config.output_chars)
    finally:
        os.close(ready_r)
        shutil.rmtree(root, ignore_errors=True)
    if not started:  # the sample never ran: whatever happened is the set-up's, not the program's
        reason = (stderr.split(SETUP_MARK, 1)[1].strip().splitlines() or ["?"])[0] if SETUP_MARK in stderr else (
            f"set-up did not finish within the {config.timeout:g}s timeout" if status == "timeout"
            else f"set-up exited with status {code}: {stderr.strip()[-300:]}")
        raise SandboxUnavailableError(f"the sandbox could not be set up, so the program was not run: {reason}")
    return SandboxResult(status, code, seconds, stdout, stderr, _layers(config, namespaced, outer is not None))


def run_many(sources: Sequence[str], config: SandboxConfig | None = None, workers: int | None = None,
             desc: str = "sandbox") -> list[SandboxResult]:
    """Run many programs, a few at a time (threads only wait on subprocesses), results in input order."""
    config = config or SandboxConfig()
    isolation_layers(config)  # refuse before starting anything
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_program, s, config) for s in sources]
        return [f.result() for f in progress(futures, desc, total=len(futures))]


def check_program(prompt: str, completion: str, test: str, entry_point: str) -> str:
    """The HumanEval check script: prompt + completion, the test code, then `check(entry_point)`."""
    call = f"\ncheck({entry_point})\n" if entry_point else "\n"
    return f"{prompt}{completion}\n\n{test}\n{call}"
