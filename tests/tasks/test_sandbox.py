"""The sandbox contains what generated code may do: loops, fork bombs, unbounded allocation, file deletion, network."""

from __future__ import annotations

import socket
import time

import pytest

from greenprune.tasks.sandbox import SandboxConfig, namespaces_available, run_program


def test_pass_and_fail():
    assert run_program("import math\nassert math.gcd(12, 18) == 6\n").status == "passed"
    failed = run_program("assert 1 == 2\n")
    assert failed.status == "failed" and "AssertionError" in failed.stderr


def test_infinite_loop_times_out():
    start = time.perf_counter()
    result = run_program("while True:\n    pass\n", SandboxConfig(timeout=1.5))
    assert result.status == "timeout"
    assert time.perf_counter() - start < 10


def test_fork_bomb_is_contained_by_guard():
    result = run_program("import os\nwhile True:\n    os.fork()\n", SandboxConfig(timeout=3))
    assert result.status == "failed"
    assert "disabled in the greenprune sandbox" in result.stderr


@pytest.mark.skipif(not namespaces_available(), reason="needs unprivileged user/pid namespaces")
def test_raw_fork_bomb_is_contained_by_namespaces():
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    start = time.perf_counter()
    result = run_program(bomb, SandboxConfig(timeout=2, guard=False))
    assert result.status == "timeout"
    assert time.perf_counter() - start < 15
    # nothing of the bomb survives: a fresh sandbox run still works and is quick
    assert run_program("print('alive')\n").stdout.strip() == "alive"


def test_unbounded_allocation_hits_memory_cap():
    result = run_program("x = []\nwhile True:\n    x.append(bytearray(10**7))\n",
                         SandboxConfig(timeout=20, memory_mb=256))
    assert result.status == "failed"
    assert "MemoryError" in result.stderr


@pytest.mark.parametrize("guard", [True, False])
def test_remove_outside_sandbox_is_contained(tmp_path, guard):
    if not guard and not namespaces_available():
        pytest.skip("without namespaces only the guard protects files")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    code = f"import os\nos.remove({str(victim)!r})\n"
    result = run_program(code, SandboxConfig(guard=guard))
    assert result.status == "failed"
    assert victim.read_text() == "keep me"


def test_files_inside_work_dir_are_allowed():
    code = "open('scratch.txt', 'w').write('x')\nassert open('scratch.txt').read() == 'x'\n"
    assert run_program(code, SandboxConfig(guard=False)).status == "passed"


def test_no_network_to_host_loopback():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    code = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
    try:
        result = run_program(code, SandboxConfig(guard=not namespaces_available()))
        assert result.status == "failed"
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()


def test_without_namespaces_the_other_layers_still_hold(tmp_path):
    off = SandboxConfig(namespaces="off", timeout=1.5)
    assert run_program("print(sum(range(10)))\n", off).stdout.strip() == "45"
    assert run_program("while True:\n    pass\n", off).status == "timeout"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    assert run_program(f"import os\nos.remove({str(victim)!r})\n", off).status == "failed"
    assert victim.exists()
    assert "disabled" in run_program("import os\nos.fork()\n", off).stderr
