"""Run untrusted generated code in a contained subprocess, and only there.

Layers, each covering what the others may miss:

1. a fresh Python (`-I -S`: no user site, no site-packages, no PYTHON* variables) in its own process group,
   in a temporary working folder, with a minimal environment;
2. when the kernel allows unprivileged namespaces (`unshare`): new user, network, mount and PID namespaces — no
   network at all (not even the host's loopback), a PID namespace whose death takes every descendant with it
   (even ones that `setsid`), a per-namespace `pid_max` cap against fork bombs (kernels ≥ 6.14), and a `chroot`
   into the working folder so the rest of the file system is not even visible;
3. resource limits: address space (memory cap), CPU seconds, file size, open files, and RLIMIT_NPROC when not
   running as root (root ignores it);
4. a guard inside the child that disables process creation, signals to others, file removal/renaming, chmod/chown
   and sockets before the sample runs;
5. a wall-clock timeout, after which the whole process group (and the PID namespace) is SIGKILLed.

stdout/stderr go to files capped by RLIMIT_FSIZE, so a sample that prints forever cannot exhaust the parent.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from greenprune._utils import progress

PRELOAD = (
    "math", "re", "string", "itertools", "collections", "functools", "heapq", "bisect", "typing", "hashlib",
    "fractions", "decimal", "statistics", "operator", "copy", "random", "json", "datetime", "cmath", "array",
    "numbers", "enum", "dataclasses", "textwrap", "unicodedata", "struct", "calendar", "time",
)

_PRELUDE = r'''
import builtins, json, os, resource, shutil, socket, subprocess, sys
program, cfg = sys.argv[1], json.loads(sys.argv[2])
with open(program, encoding="utf-8") as fh:
    source = fh.read()
for name in cfg["preload"]:
    try:
        __import__(name)
    except Exception:
        pass
if cfg["namespaced"] and os.getpid() == 1:
    try:
        with open("/proc/sys/kernel/pid_max", "w") as fh:
            fh.write(str(cfg["pid_max"]))
    except OSError:
        pass
os.chdir(cfg["workdir"])
if cfg["namespaced"] and cfg["chroot"]:
    try:
        os.chroot(cfg["workdir"])
        os.chdir("/")
    except OSError:
        pass
limits = [(resource.RLIMIT_AS, cfg["memory_bytes"]), (resource.RLIMIT_CPU, cfg["cpu_seconds"]),
          (resource.RLIMIT_FSIZE, cfg["file_bytes"]), (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NOFILE, 64)]
if cfg["nproc"]:
    limits.append((resource.RLIMIT_NPROC, cfg["nproc"]))
for what, value in limits:
    try:
        resource.setrlimit(what, (value, value))
    except (ValueError, OSError):
        pass
if cfg["guard"]:
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
exec(compile(source, "program.py", "exec"), namespace)
'''


@dataclass
class SandboxConfig:
    """Limits of one sandboxed run."""

    timeout: float = 5.0  # wall-clock seconds
    memory_mb: int = 1024  # address-space cap
    cpu_seconds: int | None = None  # default: ceil(timeout) + 1
    file_mb: int = 16  # largest file (and captured output) the sample may write
    max_processes: int = 16  # RLIMIT_NPROC headroom when not root
    pid_max: int = 301  # per-PID-namespace cap (the kernel's minimum is 301)
    namespaces: str = "auto"  # "auto" | "on" | "off"
    chroot: bool = True
    guard: bool = True
    preload: tuple[str, ...] = PRELOAD
    output_chars: int = 4000  # stdout/stderr kept in the result


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


def _unshare_cmd() -> list[str]:
    return ["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--mount-proc", "--kill-child"]


@functools.lru_cache(maxsize=1)
def namespaces_available() -> bool:
    """Whether unprivileged user+net+pid+mount namespaces work here (checked once per process)."""
    if shutil.which("unshare") is None:
        return False
    try:
        done = subprocess.run([*_unshare_cmd(), "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _processes_of_user() -> int:
    uid = os.getuid()
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += 1
            except OSError:
                continue
    return count


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def run_program(source: str, config: SandboxConfig | None = None) -> SandboxResult:
    """Run `source` as a script in the sandbox; passed = exit code 0 within the time limit."""
    config = config or SandboxConfig()
    if config.namespaces not in ("auto", "on", "off"):
        raise ValueError(f"SandboxConfig.namespaces must be auto, on or off, got {config.namespaces!r}")
    namespaced = config.namespaces == "on" or (config.namespaces == "auto" and namespaces_available())
    if config.namespaces == "on" and not namespaces_available():
        raise RuntimeError("sandbox namespaces requested but `unshare --user --net --pid` does not work here")
    root = Path(tempfile.mkdtemp(prefix="greenprune-sandbox-"))
    workdir = root / "work"
    workdir.mkdir()
    program = root / "program.py"
    program.write_text(source, encoding="utf-8")
    layers = ["process-group", "rlimits", "timeout"]
    if namespaced:
        layers += ["user/net/pid/mount namespaces", "pid_max", *(["chroot"] if config.chroot else [])]
    if config.guard:
        layers.append("guard")
    nproc = 0
    if os.getuid() != 0:
        nproc = _processes_of_user() + config.max_processes
        layers.append("RLIMIT_NPROC")
    cfg = {
        "preload": list(config.preload), "namespaced": namespaced, "chroot": config.chroot, "guard": config.guard,
        "workdir": str(workdir), "pid_max": config.pid_max, "memory_bytes": config.memory_mb * 2**20,
        "cpu_seconds": config.cpu_seconds or int(config.timeout) + 1, "file_bytes": config.file_mb * 2**20,
        "nproc": nproc,
    }
    cmd = [sys.executable, "-I", "-S", "-c", _PRELUDE, str(program), json.dumps(cfg)]
    if namespaced:
        cmd = [*_unshare_cmd(), *cmd]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
    out_path, err_path = root / "stdout", root / "stderr"
    start = time.perf_counter()
    status, code = "failed", None
    try:
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=workdir, env=env,
                                    start_new_session=True)
            try:
                code = proc.wait(timeout=config.timeout)
                status = "passed" if code == 0 else "failed"
            except subprocess.TimeoutExpired:
                status = "timeout"
            finally:
                _kill_group(proc.pid)  # stray children too, whether or not the main process ended
                if proc.poll() is None:
                    proc.wait()
        seconds = time.perf_counter() - start
        stdout = out_path.read_text(encoding="utf-8", errors="replace")[-config.output_chars :]
        stderr = err_path.read_text(encoding="utf-8", errors="replace")[-config.output_chars :]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return SandboxResult(status, code, seconds, stdout, stderr, layers)


def run_many(sources: Sequence[str], config: SandboxConfig | None = None, workers: int | None = None,
             desc: str = "sandbox") -> list[SandboxResult]:
    """Run many programs, a few at a time (threads only wait on subprocesses), results in input order."""
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_program, s, config) for s in sources]
        return [f.result() for f in progress(futures, desc, total=len(futures))]


def check_program(prompt: str, completion: str, test: str, entry_point: str) -> str:
    """The HumanEval check script: prompt + completion, the test code, then `check(entry_point)`."""
    call = f"\ncheck({entry_point})\n" if entry_point else "\n"
    return f"{prompt}{completion}\n\n{test}\n{call}"
