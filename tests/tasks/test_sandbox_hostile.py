"""Hostile programs against the sandbox (issue 14 §1): containment comes from the kernel, never from the guard.

Threat model. A generated sample is arbitrary Python written by someone who wants out. It does not need `os`: the
`posix` module, `_socket`, `_posixsubprocess` and even `ctypes` (recovered from `object.__subclasses__()` when the
sandbox's own set-up imported it) bypass every Python-level guard. So every probe runs with `guard=True` and
`guard=False`, and both must be contained. In "namespaces" mode (what "auto" uses) a sample must not read, write or
delete any host file, reach the host's network (loopback, abstract unix sockets), see or signal host processes,
leave processes or IPC objects behind, use privileged system calls, or exhaust the machine (processes, memory,
output, time). "unsafe-limits-only" promises only resource limits, a process cap, the timeout and, as root,
that no process of the run outlives it: only that is asserted there. When namespaces do not work on this
machine, the namespace tests do not skip: they assert that "auto" and "namespaces" refuse, naming the opt-in.

Keeping the test run safe if containment is broken: destructive probes only aim at files in `tmp_path` (the
sandbox's temporary folder is redirected there through `tempfile.tempdir`), folders are only wiped when they hold
the test's canary, and fork bombs, big allocations and signals to everyone run only after a harmless precheck
showed that the cap that makes them safe holds.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import greenprune.tasks.sandbox as sandbox
from greenprune.errors import GreenpruneError
from greenprune.tasks.sandbox import (
    SandboxConfig,
    SandboxResult,
    SandboxUnavailableError,
    isolation_layers,
    namespaces_available,
    run_many,
    run_program,
)

NAMESPACES = "namespaces"
UNSAFE = "unsafe-limits-only"
IS_ROOT = os.geteuid() == 0
GUARDS = [pytest.param(True, id="guard"), pytest.param(False, id="noguard")]
MODES = [NAMESPACES, UNSAFE]  # the modes whose resource guarantees are tested
HOST_ROOT_ENTRIES = {"bin", "etc", "home", "proc", "root", "sys", "usr", "var", "work"}
SECRET_VAR = "GP_HOSTILE_SECRET"


# --- modes -------------------------------------------------------------------------------------------------------

def runnable_modes() -> list[str]:
    """The contained modes that work on this machine."""
    return [NAMESPACES] if namespaces_available() else []


def assert_refuses(mode: str) -> None:
    """`auto` and `mode` refuse to run anything, and the message names the explicit opt-in."""
    for isolation in dict.fromkeys(("auto", mode)):
        with pytest.raises(SandboxUnavailableError, match=UNSAFE):
            run_program("print('ran')\n", SandboxConfig(isolation=isolation))


def runs_here(mode: str) -> bool:
    """True when `mode` runs here. Otherwise assert the refusal that will actually happen and return False: a
    missing isolation layer tests the mode that would run, it never skips to green."""
    if mode == UNSAFE or (mode in ("auto", NAMESPACES) and NAMESPACES in runnable_modes()):
        return True
    assert_refuses(NAMESPACES if mode == "auto" else mode)
    return False


def config(mode: str, guard: bool, **overrides: object) -> SandboxConfig:
    return SandboxConfig(isolation=mode, guard=guard, **{"timeout": 3.0, **overrides})


def program(*bodies: str, **constants: object) -> str:
    """A sample: `constants` assigned as literals, then each of `bodies` dedented on its own."""
    head = "".join(f"{name} = {value!r}\n" for name, value in constants.items())
    return head + "".join(textwrap.dedent(body) for body in bodies)


def describe(result: SandboxResult) -> str:
    """All of a result, for assertion messages (pytest shortens a plain repr)."""
    return (f"status={result.status} returncode={result.returncode} layers={result.layers}\n"
            f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}")


# The reproduction: chroot into a subfolder while the working folder stays outside it, walk up, chroot
# there. Under a mapped root that keeps CAP_SYS_CHROOT this reached the host's real root.
ESCAPE = """
import posix
def escape():
    try:
        posix.mkdir("e")
    except OSError:
        pass
    try:
        posix.chroot("e")
    except OSError as exc:
        print("chroot refused:", exc, flush=True)
        return False
    for _ in range(64):
        try:
            posix.chdir("..")
        except OSError:
            pass
    try:
        posix.chroot(".")
    except OSError as exc:
        print("second chroot refused:", exc, flush=True)
    return True
print("escape attempted:", escape(), flush=True)
"""

# libc for the sample even when the guard hid ctypes: imported, or found among the live classes.
RECOVER_LIBC = """
def recover_libc():
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True), vars(ctypes)
    except Exception:
        pass
    seen, stack = set(), [object]
    while stack:
        for sub in type.__subclasses__(stack.pop()):
            if sub not in seen:
                seen.add(sub)
                stack.append(sub)
    for cls in seen:
        if cls.__name__ == "CDLL" and cls.__module__ == "ctypes":
            try:
                return cls(None, use_errno=True), cls.__init__.__globals__
            except Exception:
                pass
    return None, None
libc, ct = recover_libc()
print("libc recovered:", libc is not None, flush=True)
def errno():
    return ct["get_errno"]() if ct else None
"""


# --- processes on the host ---------------------------------------------------------------------------------------

def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


def _alive(pid: str) -> bool:
    stat = _read(f"/proc/{pid}/stat")
    return bool(stat) and stat.rsplit(b")", 1)[-1].split()[0] not in (b"Z", b"X")


def _pid_ns(pid: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def _mentions(pid: str, needle: str) -> bool:
    """Whether a process's command line, environment, working folder, root or an open file names `needle`."""
    if any(needle.encode() in _read(f"/proc/{pid}/{name}") for name in ("cmdline", "environ")):
        return True
    links = [f"/proc/{pid}/cwd", f"/proc/{pid}/root"]
    with contextlib.suppress(OSError):
        links += [f"/proc/{pid}/fd/{fd}" for fd in os.listdir(f"/proc/{pid}/fd")]
    for link in links:
        with contextlib.suppress(OSError):
            if needle in os.readlink(link):
                return True
    return False


def processes_touching(needle: str, namespaces: Collection[str] = ()) -> set[int]:
    """Live host processes (not this one) that name `needle` or live in one of the PID `namespaces`."""
    found = set()
    for pid in os.listdir("/proc"):
        if not (pid.isdigit() and int(pid) != os.getpid() and _alive(pid)):
            continue
        if _mentions(pid, needle) or (namespaces and _pid_ns(pid) in namespaces):
            found.add(int(pid))
    return found


def survivors(needle: str, namespaces: Collection[str] = (), wait: float = 3.0) -> set[int]:
    """Processes still there after `wait` seconds of polling (killed ones may take a moment to be reaped)."""
    deadline = time.monotonic() + wait
    while True:
        found = processes_touching(needle, namespaces)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def kill_all(pids: Collection[int]) -> None:
    for pid in pids:  # only processes a sandbox run of this test started
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def run_watched(source: str, cfg: SandboxConfig, needle: str) -> tuple[SandboxResult, set[str]]:
    """Run while polling /proc; also return the PID namespaces (other than ours) the run's processes were seen in.

    A daemon forked inside the sandbox inherits its parent's command line, environment, working folder and open
    stdout, and stays in its PID namespace: whatever identified the run's processes while it ran identifies the
    daemon afterwards. The caller checks the detector saw the run at all, so a blind detector cannot pass."""
    own = _pid_ns("self")
    namespaces: set[str] = set()
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(run_program, source, cfg)
        while not future.done():
            for pid in processes_touching(needle):
                ns = _pid_ns(str(pid))
                if ns and ns != own:
                    namespaces.add(ns)
            time.sleep(0.05)
        return future.result(), namespaces


# --- fixtures ----------------------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def sandbox_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The sandbox's temporary folders live in tmp_path (so '..' of a work folder is ours, and every process of a
    run names tmp_path); afterwards no process of any run of the test may be left."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setenv("TMPDIR", str(tmp))
    yield tmp
    left = survivors(str(tmp_path))
    kill_all(left)
    assert not left, f"processes of a sandbox run outlived it: {sorted(left)}"


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen]:
    """A host process owned by the caller, with a secret in its environment: a target for the sample."""
    token = secrets.token_hex(8)
    proc = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL, cwd="/", env={SECRET_VAR: token})
    proc.token = token  # type: ignore[attr-defined]
    # Popen returns when exec has begun; the new image's environment is readable a moment later
    deadline = time.monotonic() + 10
    while token.encode() not in _read(f"/proc/{proc.pid}/environ") and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def assert_pid_namespaced(mode: str, guard: bool, host_pid: int) -> None:
    """Precheck before signalling everyone: the sample cannot even see `host_pid` or this process."""
    source = program("""
        import posix
        for pid in PIDS:
            try:
                posix.kill(pid, 0)
                print("visible", pid)
            except ProcessLookupError:
                print("hidden", pid)
            except OSError as exc:
                print("visible", pid, exc)
    """, PIDS=[host_pid, os.getpid()])
    result = run_program(source, config(mode, guard))
    assert result.stdout.split() == ["hidden", str(host_pid), "hidden", str(os.getpid())], describe(result)


def assert_unprivileged(mode: str, guard: bool) -> None:
    """Precheck: as root, unsafe mode runs the sample under a throwaway uid (so signals and the process cap hold)."""
    result = run_program("import posix\nprint(posix.getuid(), posix.geteuid())\n", config(mode, guard))
    uid, euid = map(int, result.stdout.split())
    assert uid != 0 and euid != 0, f"unsafe mode ran the sample as root: {result}"


# --- refusing without isolation, and recording the layers ------------------------------------------------------

def test_auto_refuses_when_namespaces_do_not_work(monkeypatch, tmp_path):
    original = sandbox.namespaces_available
    if hasattr(original, "cache_clear"):
        original.cache_clear()
    monkeypatch.setattr(sandbox, "namespaces_available", lambda: False)
    if hasattr(sandbox, "namespace_problem"):  # the cached probe behind namespaces_available, when there is one
        monkeypatch.setattr(sandbox, "namespace_problem", lambda: "user namespaces are disabled (test)")
    marker = tmp_path / "ran.txt"
    source = f"open({str(marker)!r}, 'w').write('ran')\n"
    for cfg in (None, SandboxConfig(), SandboxConfig(isolation="auto", guard=False),
                SandboxConfig(isolation=NAMESPACES)):
        with pytest.raises(SandboxUnavailableError, match=UNSAFE) as refused:
            run_program(source, cfg)
        assert "namespace" in str(refused.value)
        assert isinstance(refused.value, GreenpruneError)
        with pytest.raises(SandboxUnavailableError, match=UNSAFE):
            isolation_layers(cfg)
    with pytest.raises(SandboxUnavailableError, match=UNSAFE):
        run_many([source, source], SandboxConfig())
    assert not marker.exists(), "the refused program ran anyway"
    assert SandboxConfig().isolation == "auto"
    # the explicitly named unsafe mode still runs, and says what it is
    unsafe = run_program("print('ran')\n", SandboxConfig(isolation=UNSAFE))
    assert unsafe.stdout.strip() == "ran"
    assert not any(layer.startswith("namespaces") or layer == "pivot_root" for layer in unsafe.layers)


@pytest.mark.parametrize("guard", GUARDS)
@pytest.mark.parametrize("mode", ["auto", NAMESPACES])
def test_namespace_runs_record_their_layers(mode, guard):
    if not runs_here(mode):
        return
    cfg = config(mode, guard)
    result = run_program("print('ok')\n", cfg)
    assert result.stdout.strip() == "ok"
    for layers in (result.layers, isolation_layers(cfg)):
        assert {"pivot_root", "caps-dropped", "no_new_privs"} <= set(layers), layers
        assert any(layer.startswith("namespaces") for layer in layers), layers
        assert ("guard" in layers) == guard, layers


@pytest.mark.parametrize("guard", GUARDS)
def test_unsafe_runs_do_not_claim_namespaces(guard):
    cfg = config(UNSAFE, guard)
    result = run_program("print('ok')\n", cfg)
    assert result.stdout.strip() == "ok"
    for layers in (result.layers, isolation_layers(cfg)):
        assert not any(layer.startswith("namespaces") for layer in layers), layers
        assert not {"pivot_root", "caps-dropped", "no_new_privs"} & set(layers), layers
        assert {"rlimits", "timeout"} <= set(layers), layers
        assert ("guard" in layers) == guard, layers


# --- files ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("mode", "guard"), [("default", True), (NAMESPACES, True), (NAMESPACES, False)])
def test_chroot_escape_cannot_touch_host_files(tmp_path, mode, guard):
    if not runs_here("auto" if mode == "default" else mode):
        return
    token = secrets.token_hex(8)
    secret = tmp_path / "host-secret.txt"
    secret.write_text(token)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    written = tmp_path / "escaped.txt"
    host_reads = [str(secret), "/etc/hostname", "/etc/passwd", str(Path(sys.executable).resolve())]
    source = program(ESCAPE, """
        for path in READS:
            try:
                fd = posix.open(path, posix.O_RDONLY)
                print("READ", path, posix.read(fd, 256), flush=True)
                posix.close(fd)
            except OSError as exc:
                print("unreadable", path, type(exc).__name__, flush=True)
        try:
            fd = posix.open(WRITE, posix.O_WRONLY | posix.O_CREAT, 0o644)
            posix.write(fd, b"out")
            print("WROTE", WRITE, flush=True)
        except OSError as exc:
            print("unwritable", type(exc).__name__, flush=True)
        for act in (lambda: posix.unlink(VICTIM), lambda: posix.rename(VICTIM, VICTIM + ".moved"),
                    lambda: posix.truncate(VICTIM, 0)):
            try:
                act()
                print("TOUCHED", VICTIM, flush=True)
            except OSError as exc:
                print("untouched", type(exc).__name__, flush=True)
        print("root sees", sorted(posix.listdir("/")), flush=True)
    """, READS=host_reads, WRITE=str(written), VICTIM=str(victim))
    result = run_program(source) if mode == "default" else run_program(source, config(mode, guard))
    out = result.stdout + result.stderr
    assert "escape attempted" in result.stdout, describe(result)
    assert victim.read_text() == "keep me"
    assert not written.exists() and not Path(f"{victim}.moved").exists()
    assert token not in out
    for marker in ("READ", "WROTE", "TOUCHED"):
        assert f"{marker} " not in result.stdout, result.stdout
    hostname = _read("/etc/hostname").decode().strip()
    if len(hostname) >= 6:
        assert hostname not in out


@pytest.mark.parametrize("guard", GUARDS)
def test_writes_outside_the_work_folder_do_not_land(tmp_path, sandbox_tmp, guard):
    if not runs_here(NAMESPACES):
        return
    name = f"greenprune-hostile-{secrets.token_hex(6)}.txt"
    targets = [tmp_path / name, sandbox_tmp / name, Path("/tmp") / name, Path("/var/tmp") / name]
    source = program("""
        import posix
        def write_all(label):
            for path in TARGETS:
                try:
                    with open(path, "w") as fh:
                        fh.write("out")
                    print(label, "WROTE", path, flush=True)
                except OSError:
                    pass
                try:
                    fd = posix.open(path, posix.O_WRONLY | posix.O_CREAT, 0o644)
                    posix.write(fd, b"out")
                    posix.close(fd)
                    print(label, "WROTE", path, flush=True)
                except OSError:
                    pass
        write_all("direct")
        for rel in ("../" + NAME, "../../" + NAME, "../../../" + NAME):
            try:
                open(rel, "w").write("out")
            except OSError:
                pass
    """, ESCAPE, """
        write_all("after escape")
        print("done", flush=True)
    """, TARGETS=[str(t) for t in targets], NAME=name)
    try:
        result = run_program(source, config(NAMESPACES, guard))
        assert "done" in result.stdout, describe(result)
        landed = [str(t) for t in targets if t.exists()]
        assert not landed, f"files written outside the work folder: {landed}"  # inside, /tmp is the work folder's
    finally:
        for target in targets:
            with contextlib.suppress(OSError):
                target.unlink()


@pytest.mark.parametrize("guard", GUARDS)
def test_deleting_the_parent_folder_and_host_files(tmp_path, sandbox_tmp, guard):
    if not runs_here(NAMESPACES):
        return
    canary = f"canary-{secrets.token_hex(6)}"
    (sandbox_tmp / canary).write_text("keep me")
    (tmp_path / canary).write_text("keep me")
    victims = [tmp_path / "victim.txt", sandbox_tmp / "victim.txt"]
    for victim in victims:
        victim.write_text("keep me")
    source = program("""
        import posix
        print("before", flush=True)
        def wipe(folder):
            try:
                names = posix.listdir(folder)
            except OSError:
                return
            # a folder of this test (its canary) or the sandbox's own, never a stranger's (e.g. the real /tmp)
            if CANARY not in names and not {"program.py", "stdout", "stderr"} & set(names):
                return
            for name in names:
                path = folder + "/" + name
                try:
                    posix.unlink(path)
                    print("deleted", path, flush=True)
                except OSError:
                    try:
                        posix.rmdir(path)
                    except OSError:
                        pass
        def wipe_all():
            for folder in ("..", "../..", "../../.."):
                wipe(folder)
            for victim in VICTIMS:
                for act in (lambda: posix.unlink(victim), lambda: posix.rename(victim, victim + ".moved")):
                    try:
                        act()
                        print("DELETED", victim, flush=True)
                    except OSError:
                        pass
        wipe_all()
    """, ESCAPE, """
        wipe_all()
        print("after", flush=True)
    """, CANARY=canary, VICTIMS=[str(v) for v in victims])
    result = run_program(source, config(NAMESPACES, guard))  # must return a result, its capture intact
    assert "before" in result.stdout and "after" in result.stdout, describe(result)
    for victim in victims:
        assert victim.read_text() == "keep me"
    assert (sandbox_tmp / canary).exists() and (tmp_path / canary).exists()
    assert "DELETED" not in result.stdout


# --- other processes -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("guard", GUARDS)
def test_other_processes_environment_is_unreadable(monkeypatch, sleeper, guard):
    if not runs_here(NAMESPACES):
        return
    secret = sleeper.token
    monkeypatch.setenv(SECRET_VAR, secret)  # anything the sandbox starts from this process inherits it too
    assert secret.encode() in _read(f"/proc/{sleeper.pid}/environ")  # the probe has something to find
    source = program("""
        import posix
        def scan(label):
            found = 0
            try:
                pids = posix.listdir("/proc")
            except OSError:
                pids = []
            for pid in ["self", *pids]:
                try:
                    fd = posix.open("/proc/%s/environ" % pid, posix.O_RDONLY)
                    data = posix.read(fd, 1 << 16)
                    posix.close(fd)
                except OSError:
                    continue
                found += 1
                for entry in data.split(b"\\0"):
                    if entry.startswith(NAME.encode()):
                        print(label, "LEAK", pid, entry, flush=True)
            for key, value in posix.environ.items():
                if key == NAME.encode():
                    print(label, "LEAK own", value, flush=True)
            print(label, "environ files read:", found, flush=True)
        scan("direct")
    """, ESCAPE, """
        scan("after escape")
    """, NAME=SECRET_VAR)
    result = run_program(source, config(NAMESPACES, guard, output_chars=100_000))
    assert "after escape" in result.stdout, describe(result)
    assert secret not in result.stdout + result.stderr
    assert "LEAK" not in result.stdout


@pytest.mark.parametrize("guard", GUARDS)
def test_host_network_is_unreachable(guard):
    if not runs_here(NAMESPACES):
        return
    tcp = socket.socket()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    abstract = socket.socket(socket.AF_UNIX)
    short = Path(tempfile.mkdtemp(prefix="gph-", dir="/tmp"))  # a unix socket path must be short
    named = socket.socket(socket.AF_UNIX)
    try:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(4)
        udp.bind(("127.0.0.1", 0))
        abstract_name = f"\0greenprune-hostile-{secrets.token_hex(6)}"
        abstract.bind(abstract_name)
        abstract.listen(4)
        named.bind(str(short / "s"))
        named.listen(4)
        source = program("""
            try:
                import _socket
            except ImportError:
                _socket = None
            def attempt(label, family, kind, address, send=False):
                try:
                    s = _socket.socket(family, kind)
                    s.settimeout(1)
                    if send:
                        s.sendto(b"hello", address)
                    else:
                        s.connect(address)
                        s.sendall(b"hello")
                    print("REACHED", label, flush=True)
                except OSError as exc:
                    print("unreachable", label, type(exc).__name__, flush=True)
            if _socket is not None:
                attempt("tcp", _socket.AF_INET, _socket.SOCK_STREAM, ("127.0.0.1", TCP))
                attempt("udp", _socket.AF_INET, _socket.SOCK_DGRAM, ("127.0.0.1", UDP), send=True)
                attempt("abstract", _socket.AF_UNIX, _socket.SOCK_STREAM, ABSTRACT)
                attempt("named", _socket.AF_UNIX, _socket.SOCK_STREAM, NAMED)
        """, RECOVER_LIBC, """
            if libc is not None:  # `_socket` may not be importable inside; libc's connect is
                fd = libc.socket(2, 1, 0)  # AF_INET, SOCK_STREAM
                address = b"\\x02\\0" + TCP.to_bytes(2, "big") + bytes([127, 0, 0, 1]) + bytes(8)
                if fd >= 0 and libc.connect(fd, address, 16) == 0:
                    print("REACHED libc tcp", flush=True)
                else:
                    print("unreachable libc tcp", errno(), flush=True)
            print("done", flush=True)
        """, TCP=tcp.getsockname()[1], UDP=udp.getsockname()[1], ABSTRACT=abstract_name, NAMED=str(short / "s"))
        result = run_program(source, config(NAMESPACES, guard))
        assert "done" in result.stdout, describe(result)
        assert "REACHED" not in result.stdout, describe(result)
        for server in (tcp, abstract, named):
            server.settimeout(0.3)
            with pytest.raises(TimeoutError):
                server.accept()
        udp.settimeout(0.3)
        with pytest.raises(TimeoutError):
            udp.recvfrom(16)
    finally:
        for sock in (tcp, udp, abstract, named):
            sock.close()
        with contextlib.suppress(OSError):
            (short / "s").unlink()
        short.rmdir()


@pytest.mark.parametrize("guard", GUARDS)
@pytest.mark.parametrize("mode", MODES)
def test_setsid_daemon_does_not_survive(tmp_path, mode, guard):
    if not runs_here(mode):
        return
    if mode == UNSAFE and not IS_ROOT:
        pytest.skip("unsafe mode only kills every process of the run when it can use a throwaway uid (as root)")
    token = f"gp-hostile-daemon-{secrets.token_hex(6)}"
    source = program("""
        import posix, time
        r, w = posix.pipe()
        if posix.fork() == 0:
            posix.setsid()
            if posix.fork() != 0:
                posix._exit(0)
            posix.write(w, b"daemon up")
            try:  # outside a pivot_root the interpreter is visible: carry the token on the command line
                posix.execv(EXE, [EXE, "-I", "-S", "-c", "import time\\nwhile True: time.sleep(0.2)", TOKEN])
            except OSError:
                pass
            while True:
                time.sleep(0.2)
        print(posix.read(r, 64).decode(), flush=True)
        time.sleep(1.0)  # the detector sees the daemon's namespace (or token) while the run lasts
    """, EXE=sys.executable, TOKEN=token)
    result, namespaces = run_watched(source, config(mode, guard, timeout=5), str(tmp_path))
    assert "daemon up" in result.stdout, describe(result)
    if mode == NAMESPACES:
        assert namespaces, "the detector never saw the run's PID namespace: it could not see a survivor either"
    left = survivors(token, namespaces) | survivors(str(tmp_path))
    kill_all(left)
    assert not left, f"the setsid daemon survived the run: {sorted(left)}"


@pytest.mark.parametrize("guard", GUARDS)
@pytest.mark.parametrize("mode", MODES)
def test_killing_the_parent_and_everyone_hurts_nothing(sleeper, mode, guard):
    if not runs_here(mode):
        return
    if mode == UNSAFE:
        if not IS_ROOT:
            pytest.skip("without a throwaway uid, unsafe mode runs the sample as the caller, who can be signalled")
        assert_unprivileged(mode, guard)
        targets = "PIDS[0], PIDS[1], posix.getppid()"  # never kill(-1) from the host's PID namespace
    else:
        assert_pid_namespaced(mode, guard, sleeper.pid)
        targets = "PIDS[0], PIDS[1], -1, posix.getppid()"  # getppid() is 0 there: ourselves, last
    source = program(f"""
        import posix
        print("start", flush=True)
        for pid in ({targets},):
            try:
                posix.kill(pid, 9)
                print("signalled", pid, flush=True)
            except OSError as exc:
                print("refused", pid, type(exc).__name__, flush=True)
    """, PIDS=[sleeper.pid, os.getpid()])
    result = run_program(source, config(mode, guard))
    assert "start" in result.stdout, describe(result)
    time.sleep(0.2)
    assert sleeper.poll() is None, "the sample killed a host process"
    assert run_program("print('alive')\n", config(mode, guard)).stdout.strip() == "alive"


# --- resources -----------------------------------------------------------------------------------------------------

def forks_allowed(mode: str, guard: bool, limit: int = 64) -> tuple[int, SandboxConfig]:
    """How many children the sample could fork (each sleeping), up to `limit`."""
    cfg = config(mode, guard, max_processes=8)
    source = program("""
        import posix, time
        count = 0
        for _ in range(LIMIT):
            try:
                pid = posix.fork()
            except OSError:
                break
            if pid == 0:
                time.sleep(30)
                posix._exit(0)
            count += 1
        print("forks", count, flush=True)
    """, LIMIT=limit)
    result = run_program(source, cfg)
    assert result.stdout.startswith("forks "), describe(result)
    return int(result.stdout.split()[1]), cfg


@pytest.mark.parametrize("guard", GUARDS)
@pytest.mark.parametrize("mode", MODES)
def test_process_cap_holds(mode, guard):
    if not runs_here(mode):
        return
    if mode == UNSAFE and IS_ROOT:
        assert_unprivileged(mode, guard)  # the kernel exempts real root from RLIMIT_NPROC
    count, cfg = forks_allowed(mode, guard)
    assert count <= cfg.max_processes + 2, f"{count} children forked with max_processes={cfg.max_processes}"


@pytest.mark.parametrize("guard", GUARDS)
@pytest.mark.parametrize("mode", MODES)
def test_raw_fork_bomb_is_bounded(mode, guard):
    if not runs_here(mode):
        return
    if mode == UNSAFE and IS_ROOT:
        assert_unprivileged(mode, guard)
    count, _ = forks_allowed(mode, guard)
    assert count < 64, "no process cap holds: the fork bomb is not run"
    bomb = """
        import posix, time
        deadline = time.monotonic() + 20  # a safety net for this machine, far beyond the sandbox's timeout
        while time.monotonic() < deadline:
            try:
                posix.fork()
            except OSError:
                pass
    """
    start = time.perf_counter()
    result = run_program(program(bomb), config(mode, guard, timeout=2))
    assert result.status in ("timeout", "failed"), describe(result)
    assert time.perf_counter() - start < 15
    assert run_program("print('alive')\n", config(mode, guard)).stdout.strip() == "alive"


@pytest.mark.parametrize("guard", GUARDS)
@pytest.mark.parametrize("mode", MODES)
def test_infinite_loop_times_out(mode, guard):
    if not runs_here(mode):
        return
    start = time.perf_counter()
    result = run_program("while True:\n    pass\n", config(mode, guard, timeout=1.5))
    assert result.status == "timeout"
    assert time.perf_counter() - start < 8


@pytest.mark.parametrize("guard", GUARDS)
@pytest.mark.parametrize("mode", MODES)
def test_huge_allocation_fails_fast(mode, guard):
    if not runs_here(mode):
        return
    source = program("""
        try:  # reserve without touching first: if the cap does not hold, stop before using 20 GB for real
            import mmap
        except ImportError:
            mmap = None
        if mmap is not None:
            try:
                mmap.mmap(-1, SIZE)
            except (OSError, MemoryError, ValueError, OverflowError):
                pass
            else:
                print("UNCAPPED", flush=True)
                raise SystemExit(3)
        data = bytearray(SIZE)
        print("allocated", len(data))
    """, SIZE=20 * 2**30)
    start = time.perf_counter()
    result = run_program(source, config(mode, guard, timeout=10))
    assert "UNCAPPED" not in result.stdout
    assert result.status == "failed" and "MemoryError" in result.stderr, describe(result)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("fd", [1, 2], ids=["stdout", "stderr"])
@pytest.mark.parametrize("guard", GUARDS)
@pytest.mark.parametrize("mode", MODES)
def test_output_flood_is_capped(mode, guard, fd):
    if not runs_here(mode):
        return
    cfg = config(mode, guard, timeout=8)
    source = program("""
        import posix
        chunk = b"x" * 2**20
        for _ in range(100):  # 100 MB
            posix.write(FD, chunk)
    """, FD=fd)
    start = time.perf_counter()
    tracemalloc.start()
    try:
        result = run_program(source, cfg)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < cfg.timeout + 5
    assert len(result.stdout) <= cfg.output_chars and len(result.stderr) <= cfg.output_chars
    assert "xxxx" in (result.stdout if fd == 1 else result.stderr)
    # the parent keeps the tail only: holding even the size-capped file would take file_mb MiB
    assert peak < 8 * 2**20, f"the parent allocated {peak / 2**20:.0f} MiB for the output"


# --- privileges and other ways out (namespaces) ------------------------------------------------------------------

_OPEN_BY_HANDLE_AT = {"x86_64": 304, "aarch64": 265, "arm64": 265, "riscv64": 265}


@pytest.mark.parametrize("guard", GUARDS)
def test_no_privileged_operation_works(tmp_path, guard):
    if not runs_here(NAMESPACES):
        return
    outside = tmp_path / f"gp-{secrets.token_hex(4)}"
    source = program("""
        import posix
        def attempt(name, act):
            try:
                value = act()
            except OSError as exc:
                print("refused", name, type(exc).__name__, flush=True)
                return
            if isinstance(value, int) and value < 0:  # a libc call: -1 and errno
                print("refused", name, errno(), flush=True)
            else:
                print("ALLOWED", name, value, flush=True)
        try:
            posix.mkdir("e")
        except OSError:
            pass
        attempt("chroot", lambda: posix.chroot("e"))
        attempt("mknod", lambda: posix.mknod("null", 0o20666, posix.makedev(1, 3)))
        attempt("setuid", lambda: posix.setuid(4242))
        attempt("setgroups", lambda: posix.setgroups([0]))
        attempt("proc", lambda: posix.stat("/proc/self/status"))
        attempt("mkdir outside", lambda: posix.mkdir(OUTSIDE))
    """, RECOVER_LIBC, """
        if libc is not None:
            name = posix.uname().nodename.encode()
            attempt("mount tmpfs", lambda: libc.mount(b"none", b"e", b"tmpfs", 0, None))
            attempt("unshare user", lambda: libc.unshare(0x10000000))
            attempt("unshare mount", lambda: libc.unshare(0x20000))
            attempt("sethostname (to its own name)", lambda: libc.sethostname(name, len(name)))
            if OPEN_BY_HANDLE_AT > 0:  # "shocker": a handle for the root inode of the fs stdout lives on
                handle = ct["create_string_buffer"](b"\\x08\\0\\0\\0\\x01\\0\\0\\0\\x02\\0\\0\\0\\0\\0\\0\\0")
                attempt("open_by_handle_at", lambda: libc.syscall(OPEN_BY_HANDLE_AT, 1, handle, 0))
        print("done", flush=True)
    """, OUTSIDE=str(outside), OPEN_BY_HANDLE_AT=_OPEN_BY_HANDLE_AT.get(os.uname().machine, -1))
    result = run_program(source, config(NAMESPACES, guard))
    assert "done" in result.stdout, describe(result)
    assert "ALLOWED" not in result.stdout, result.stdout
    assert not outside.exists()


def _host_shm_keys() -> set[int]:
    lines = _read("/proc/sysvipc/shm").decode().splitlines()[1:]
    return {int(line.split()[0]) for line in lines if line.split()}


@pytest.mark.parametrize("guard", GUARDS)
def test_host_ipc_objects_are_unreachable(guard):
    if not runs_here(NAMESPACES):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    host_key, new_key = (secrets.randbelow(2**30) + 1 for _ in range(2))
    host_id = libc.shmget(host_key, 4096, 0o1600)  # IPC_CREAT, owner-only, in the host's IPC namespace
    assert host_id >= 0, os.strerror(ctypes.get_errno())
    source = program(RECOVER_LIBC, """
        if libc is not None:
            print("host segment:", libc.shmget(HOST_KEY, 0, 0), errno(), flush=True)
            print("new segment:", libc.shmget(NEW_KEY, 4096, 0o1666), errno(), flush=True)
            print("new queue:", libc.msgget(NEW_KEY, 0o1666), errno(), flush=True)
        print("done", flush=True)
    """, HOST_KEY=host_key, NEW_KEY=new_key)
    try:
        result = run_program(source, config(NAMESPACES, guard))
        assert "done" in result.stdout, describe(result)
        assert "host segment: -1" in result.stdout or "libc recovered: False" in result.stdout, result.stdout
        assert new_key not in _host_shm_keys(), "the sample left a shared memory segment in the host's IPC namespace"
        queues = _read("/proc/sysvipc/msg").decode().splitlines()[1:]
        assert not any(line.split() and int(line.split()[0]) == new_key for line in queues), "a message queue leaked"
    finally:
        libc.shmctl(host_id, 0, None)  # IPC_RMID
        leaked_shm = libc.shmget(new_key, 0, 0)
        if leaked_shm >= 0:
            libc.shmctl(leaked_shm, 0, None)
        leaked_msg = libc.msgget(new_key, 0)
        if leaked_msg >= 0:
            libc.msgctl(leaked_msg, 0, None)


_KEYRING_WRAPPER = r"""
import ctypes, json, sys
from greenprune.tasks.sandbox import SandboxConfig, run_program
libc = ctypes.CDLL(None, use_errno=True)
SYS_ADD_KEY, SYS_KEYCTL = {"x86_64": (248, 250), "aarch64": (217, 219)}[__import__("os").uname().machine]
assert libc.syscall(SYS_KEYCTL, 1, b"gp-hostile-session") > 0  # KEYCTL_JOIN_SESSION_KEYRING
secret = sys.argv[2].encode()
assert libc.syscall(SYS_ADD_KEY, b"user", b"gp-hostile", secret, len(secret), -3) > 0  # the session keyring
probe = sys.stdin.read()
result = run_program(probe, SandboxConfig(isolation="namespaces", guard=sys.argv[1] == "1", timeout=3))
print(json.dumps({"stdout": result.stdout, "stderr": result.stderr}))
"""


@pytest.mark.parametrize("guard", GUARDS)
def test_callers_session_keyring_is_unreadable(guard):
    if not runs_here(NAMESPACES):
        return
    if os.uname().machine not in ("x86_64", "aarch64"):
        pytest.skip("keyctl system call numbers known for x86_64 and aarch64 only")
    secret = f"gp-key-{secrets.token_hex(8)}"
    probe = program(RECOVER_LIBC, """
        if libc is not None:
            key = libc.syscall(KEYCTL, 10, -3, b"user", b"gp-hostile", 0)  # KEYCTL_SEARCH the session keyring
            print("key", key, errno(), flush=True)
            buf = ct["create_string_buffer"](256)
            n = libc.syscall(KEYCTL, 11, key, buf, 256)  # KEYCTL_READ
            print("read", n, buf.raw[: max(n, 0)], flush=True)
        print("done", flush=True)
    """, KEYCTL={"x86_64": 250, "aarch64": 219}[os.uname().machine])
    wrapper = subprocess.run([sys.executable, "-c", _KEYRING_WRAPPER, "1" if guard else "0", secret], input=probe,
                             capture_output=True, text=True, timeout=60, check=False)
    assert wrapper.returncode == 0, wrapper.stderr
    result = json.loads(wrapper.stdout)
    assert "done" in result["stdout"], result
    assert secret not in result["stdout"] + result["stderr"], "the sample read the caller's session keyring"


@pytest.mark.parametrize("guard", GUARDS)
def test_no_way_out_through_descriptors_links_devices_or_tracing(tmp_path, sleeper, guard):
    if not runs_here(NAMESPACES):
        return
    token = secrets.token_hex(8)
    secret = tmp_path / "host-secret.txt"
    secret.write_text(token)
    inherited = os.open(secret, os.O_RDONLY)  # a careless caller's descriptor, left inheritable
    os.set_inheritable(inherited, True)
    source = program("""
        import posix, stat
        for fd in range(3, 1024):
            try:
                st = posix.fstat(fd)
            except OSError:
                continue
            kind = "DIR" if stat.S_ISDIR(st.st_mode) else "FILE" if stat.S_ISREG(st.st_mode) else "other"
            print("fd", fd, kind, oct(st.st_mode), flush=True)
            if kind == "FILE":
                print("fd content", posix.pread(fd, 64, 0), flush=True)
        for name, act in (("symlink", lambda: posix.symlink(SECRET, "link")),
                          ("hardlink", lambda: posix.link(SECRET, "hard"))):
            try:
                act()
            except OSError:
                pass
        for path in ("link", "hard", *DEVICES):
            try:
                fd = posix.open(path, posix.O_RDONLY | posix.O_NONBLOCK)
                print("OPENED", path, posix.read(fd, 64), flush=True)
            except OSError:
                pass
        print("ROOTLIST", sorted(posix.listdir("/")), flush=True)
    """, RECOVER_LIBC, """
        if libc is not None:
            print("TIOCSTI" if libc.ioctl(0, 0x5412, ct["c_char_p"](b"x")) == 0 else "no tiocsti", flush=True)
            if libc.ptrace(16, SLEEPER, 0, 0) == 0:  # PTRACE_ATTACH
                print("PTRACED", SLEEPER, flush=True)
                libc.ptrace(17, SLEEPER, 0, 0)
        print("done", flush=True)
    """, SECRET=str(secret), SLEEPER=sleeper.pid,
        DEVICES=["/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg", "/dev/tty", "/dev/console", "/dev/sda",
                 "/dev/vda", "/dev/nvme0n1"])
    try:
        result = run_program(source, config(NAMESPACES, guard))
    finally:
        os.close(inherited)
    out = result.stdout + result.stderr
    assert "done" in result.stdout, describe(result)
    assert token not in out
    for marker in (" DIR ", " FILE ", "OPENED", "TIOCSTI", "PTRACED"):
        assert marker not in result.stdout, result.stdout
    seen = json.loads(result.stdout.split("ROOTLIST ", 1)[1].splitlines()[0].replace("'", '"'))
    assert not HOST_ROOT_ENTRIES & set(seen), f"host folders visible at the sample's root: {seen}"
    assert sleeper.poll() is None


# --- a run's total: memory_mb caps each process, max_processes caps how many ----------------------------------------

@pytest.mark.parametrize("guard", GUARDS)
@pytest.mark.parametrize("mode", MODES)
def test_memory_cap_covers_the_whole_run(mode, guard):
    """The 20 GB allocation split over forks: memory_mb caps each process, and the process cap bounds how many
    there are, so a run holds at most memory_mb × (max_processes + 2), the bound SandboxConfig documents."""
    if not runs_here(mode):
        return
    if mode == UNSAFE and IS_ROOT:
        assert_unprivileged(mode, guard)
    cfg = config(mode, guard, memory_mb=256, max_processes=2, timeout=30)  # generous: a loaded CI machine
    source = program("""
        import posix, time
        r, w = posix.pipe()
        children = 0
        for _ in range(6):
            try:
                pid = posix.fork()
            except OSError:
                break
            if pid == 0:
                try:
                    data = bytearray(MB * 2**20)  # zero-filled, so really resident
                    posix.write(w, b"y")
                except MemoryError:
                    posix.write(w, b"n")
                time.sleep(3)
                posix._exit(0)
            children += 1
        answers = b""
        while len(answers) < children:
            answers += posix.read(r, 16)
        print("allocated", answers.count(b"y"), flush=True)
    """, MB=200)
    result = run_program(source, cfg)
    assert result.stdout.startswith("allocated "), describe(result)
    together = int(result.stdout.split()[1]) * 200
    bound = cfg.memory_mb * (cfg.max_processes + 2)
    assert together <= bound, f"the run's processes held {together} MB, more than the documented {bound} MB"


@pytest.mark.parametrize("guard", GUARDS)
@pytest.mark.parametrize("mode", MODES)
def test_a_sample_cannot_forge_a_sandbox_failure(mode, guard):
    """A sample that fakes the set-up failure report must fail alone, not abort the whole evaluation (and not
    make the sandbox look unavailable, inviting the unsafe mode)."""
    if not runs_here(mode):
        return
    forged = program("""
        import posix, sys
        for mark in MARKS:
            posix.write(2, (mark + " the sample says so\\n").encode())
        posix._exit(STATUS)
    """, MARKS=[getattr(sandbox, "SETUP_MARK", "greenprune-sandbox-setup-failed:")],
        STATUS=getattr(sandbox, "SETUP_FAILED", 125))
    result = run_program(forged, config(mode, guard))
    assert result.status == "failed"
    assert run_many([forged, "print('fine')\n"], config(mode, guard), workers=1)[1].passed
