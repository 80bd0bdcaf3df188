"""The sandbox's everyday contract: pass/fail/timeout, limits, layers, and refusing to run without isolation.

Escapes (chroot, posix.*, _socket, /proc, setsid, signals) are probed in test_sandbox_hostile.py. Where namespaces do
not work, the namespace tests here check the mode that will actually run there: a refusal naming the opt-in.
"""

from __future__ import annotations

import socket
import time

import pytest

from greenprune.tasks import sandbox as sb
from greenprune.tasks.sandbox import (
    UNSAFE_MODE,
    SandboxConfig,
    SandboxUnavailableError,
    isolation_layers,
    namespaces_available,
    run_program,
)

NAMESPACES = namespaces_available()
UNSAFE = SandboxConfig(isolation=UNSAFE_MODE)


def _refused(config: SandboxConfig) -> None:
    with pytest.raises(SandboxUnavailableError, match=UNSAFE_MODE):
        run_program("print('never runs')\n", config)


def test_pass_and_fail():
    if not NAMESPACES:
        _refused(SandboxConfig())
        return
    assert run_program("import math\nassert math.gcd(12, 18) == 6\n").status == "passed"
    failed = run_program("assert 1 == 2\n")
    assert failed.status == "failed" and "AssertionError" in failed.stderr


@pytest.mark.parametrize("isolation", ["auto", UNSAFE_MODE])
def test_infinite_loop_times_out(isolation):
    config = SandboxConfig(timeout=1.5, isolation=isolation)
    if isolation == "auto" and not NAMESPACES:
        _refused(config)
        return
    start = time.perf_counter()
    result = run_program("while True:\n    pass\n", config)
    assert result.status == "timeout"
    assert time.perf_counter() - start < 10


def test_fork_bomb_is_contained_by_guard():
    config = SandboxConfig(timeout=3) if NAMESPACES else SandboxConfig(timeout=3, isolation=UNSAFE_MODE)
    result = run_program("import os\nwhile True:\n    os.fork()\n", config)
    assert result.status == "failed"
    assert "disabled in the greenprune sandbox" in result.stderr


@pytest.mark.parametrize("isolation", ["namespaces", UNSAFE_MODE])
def test_raw_fork_bomb_is_capped_in_every_mode(isolation):
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    config = SandboxConfig(timeout=2, guard=False, isolation=isolation)
    if isolation == "namespaces" and not NAMESPACES:
        _refused(config)
        return
    start = time.perf_counter()
    result = run_program(bomb, config)
    assert result.status == "timeout"
    assert time.perf_counter() - start < 15
    # nothing of the bomb survives: a fresh sandbox run still works and is quick
    assert run_program("print('alive')\n", SandboxConfig(isolation=isolation)).stdout.strip() == "alive"


@pytest.mark.parametrize("isolation", ["auto", UNSAFE_MODE])
def test_unbounded_allocation_hits_memory_cap(isolation):
    config = SandboxConfig(timeout=20, memory_mb=256, isolation=isolation)
    if isolation == "auto" and not NAMESPACES:
        _refused(config)
        return
    result = run_program("x = []\nwhile True:\n    x.append(bytearray(10**7))\n", config)
    assert result.status == "failed"
    assert "MemoryError" in result.stderr


@pytest.mark.parametrize("guard", [True, False])
def test_remove_outside_sandbox_is_contained(tmp_path, guard):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    code = f"import os\nos.remove({str(victim)!r})\n"
    if not NAMESPACES:
        _refused(SandboxConfig(guard=guard))
        return
    result = run_program(code, SandboxConfig(guard=guard))
    assert result.status == "failed"
    assert victim.read_text() == "keep me"


@pytest.mark.parametrize("isolation", ["auto", UNSAFE_MODE])
def test_files_inside_work_dir_are_allowed(isolation):
    code = "open('scratch.txt', 'w').write('x')\nassert open('scratch.txt').read() == 'x'\n"
    config = SandboxConfig(guard=False, isolation=isolation)
    if isolation == "auto" and not NAMESPACES:
        _refused(config)
        return
    assert run_program(code, config).status == "passed"


def test_no_network_to_host_loopback():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    code = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
    try:
        if not NAMESPACES:
            _refused(SandboxConfig(guard=False))
            return
        result = run_program(code, SandboxConfig(guard=False))
        assert result.status == "failed"
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()


def test_auto_refuses_without_namespaces_and_names_the_opt_in(monkeypatch):
    monkeypatch.setattr(sb, "namespace_problem", lambda: "user namespaces are disabled (test)")
    with pytest.raises(SandboxUnavailableError, match="user namespaces are disabled") as err:
        run_program("print('never runs')\n")
    assert UNSAFE_MODE in str(err.value) and "--sandbox" in str(err.value)
    with pytest.raises(SandboxUnavailableError):
        isolation_layers(SandboxConfig(isolation="namespaces"))
    assert UNSAFE_MODE in isolation_layers(UNSAFE)


def test_unsafe_mode_keeps_its_layers(tmp_path):
    assert run_program("print(sum(range(10)))\n", UNSAFE).stdout.strip() == "45"
    off = SandboxConfig(isolation=UNSAFE_MODE, timeout=1.5)
    assert run_program("while True:\n    pass\n", off).status == "timeout"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    assert run_program(f"import os\nos.remove({str(victim)!r})\n", off).status == "failed"
    assert victim.exists()
    assert "disabled" in run_program("import os\nos.fork()\n", off).stderr


def test_results_name_their_layers():
    unsafe = run_program("pass\n", UNSAFE)
    assert UNSAFE_MODE in unsafe.layers and not any(layer.startswith("namespaces") for layer in unsafe.layers)
    assert unsafe.layers == isolation_layers(UNSAFE)
    if not NAMESPACES:
        _refused(SandboxConfig())
        return
    contained = run_program("pass\n")
    for layer in ("namespaces:user,mount,net,pid", "pivot_root", "caps-dropped", "no_new_privs", "guard"):
        assert layer in contained.layers
    assert contained.layers == isolation_layers(SandboxConfig())


def test_bad_isolation_name_is_refused():
    with pytest.raises(ValueError, match="isolation must be one of"):
        SandboxConfig(isolation="off")
