"""cnnlab.cores: OpenMP's threads spin on free cores and sleep on busy ones, chosen before torch loads."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading

import pytest

from cnnlab import cores


def choose(environ: dict, others: int | None, cpus: int = 2, torch_loaded: bool = False, monkeypatch=None):
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    return cores.choose_wait_policy(environ, others=lambda: others, torch_loaded=torch_loaded)


def test_free_cores_keep_openmps_spinning(monkeypatch):
    environ: dict = {}
    assert choose(environ, 0, monkeypatch=monkeypatch) is None
    assert environ == {}


def test_a_busy_core_makes_the_threads_sleep(monkeypatch):
    environ: dict = {}
    assert choose(environ, 1, monkeypatch=monkeypatch) == "PASSIVE"
    assert environ == {"OMP_WAIT_POLICY": "PASSIVE", cores.CHOSEN_BY_CNNLAB: "1"}


@pytest.mark.parametrize("setting", ["OMP_WAIT_POLICY", "GOMP_SPINCOUNT"])
def test_what_the_user_set_is_kept(monkeypatch, setting):
    environ = {setting: "ACTIVE" if setting == "OMP_WAIT_POLICY" else "10000"}
    assert choose(environ, 5, monkeypatch=monkeypatch) is None
    assert environ == {setting: environ[setting]}


def test_nothing_changes_once_torch_is_loaded(monkeypatch):
    environ: dict = {}
    assert choose(environ, 5, torch_loaded=True, monkeypatch=monkeypatch) is None
    assert environ == {}


def test_a_child_decides_again_rather_than_inherit_its_parents_choice(monkeypatch):
    environ = {"OMP_WAIT_POLICY": "PASSIVE", cores.CHOSEN_BY_CNNLAB: "1"}
    assert choose(environ, 0, monkeypatch=monkeypatch) is None
    assert environ == {}


def test_torchruns_sibling_processes_are_not_other_programs(monkeypatch):
    # 4 cores, 2 workers of 2 threads each: the other worker is runnable while it starts
    environ = {"LOCAL_WORLD_SIZE": "2"}
    assert choose(environ, 1, cpus=4, monkeypatch=monkeypatch) is None
    assert choose(environ, 2, cpus=4, monkeypatch=monkeypatch) == "PASSIVE"


def test_cores_left_over_by_torch_take_other_programs(monkeypatch):
    # 3 cores, 2 workers of 1 thread: one core is free for one other program
    environ = {"LOCAL_WORLD_SIZE": "2"}
    assert choose(environ, 2, cpus=3, monkeypatch=monkeypatch) is None
    assert choose(environ, 3, cpus=3, monkeypatch=monkeypatch) == "PASSIVE"


def test_a_blip_in_one_sample_is_not_a_busy_machine():
    counts = iter([0, 2, 2, 2, 1, 1])  # other programs' runnable tasks, 2 ms apart
    assert cores.others_running(lambda: next(counts)) == 0
    counts = iter([1, 2, 1, 1, 3, 1])  # a busy program is there in every sample
    assert cores.others_running(lambda: next(counts)) == 1
    assert cores.others_running(lambda: None) is None


def test_the_policy_says_what_it_is(monkeypatch):
    for name in (*cores.USER_SETTINGS, cores.CHOSEN_BY_CNNLAB):
        monkeypatch.delenv(name, raising=False)
    assert cores.wait_policy().startswith("spin, then sleep")
    monkeypatch.setenv("GOMP_SPINCOUNT", "3000")
    assert cores.wait_policy() == "spin 3000 times, then sleep (GOMP_SPINCOUNT)"
    monkeypatch.setenv("OMP_WAIT_POLICY", "passive")
    assert cores.wait_policy() == "as OMP_WAIT_POLICY=PASSIVE says"
    monkeypatch.setenv(cores.CHOSEN_BY_CNNLAB, "1")
    assert cores.wait_policy().startswith("sleep (OMP_WAIT_POLICY=PASSIVE: other programs")


@pytest.mark.skipif(cores.runnable_tasks() is None, reason="needs Linux's /proc/loadavg")
def test_this_processs_own_threads_are_not_other_programs(monkeypatch):
    """A thread of this process hashing outside the GIL is ready to run, as OpenBLAS's are after NumPy's import."""
    data, stop = bytes(1 << 20), threading.Event()

    def hash_until_stopped():
        while not stop.is_set():
            hashlib.sha256(data).digest()  # releases the GIL: the thread stays runnable

    worker = threading.Thread(target=hash_until_stopped)
    worker.start()
    try:
        assert max(cores.own_runnable_threads() for _ in range(20)) >= 2  # this thread and the worker
    finally:
        stop.set()
        worker.join()
    monkeypatch.setattr(cores, "runnable_tasks", lambda: 3)
    monkeypatch.setattr(cores, "own_runnable_threads", lambda: 2)
    assert cores.other_runnable_tasks() == 1
    monkeypatch.setattr(cores, "runnable_tasks", lambda: None)
    assert cores.other_runnable_tasks() is None


@pytest.mark.skipif(cores.runnable_tasks() is None, reason="needs Linux's /proc/loadavg")
def test_import_cnnlab_sees_a_program_keeping_every_core_busy():
    """The real thing: one busy loop per core beside a fresh Python, which then imports cnnlab (and torch)."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        code = "import os, cnnlab, torch; print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in dir())"
        environ = {k: v for k, v in os.environ.items() if k not in (*cores.USER_SETTINGS, cores.CHOSEN_BY_CNNLAB)}
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=60)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    assert result.stdout.split() == ["PASSIVE", "True"], result.stderr
