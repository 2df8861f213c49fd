"""How torch's CPU threads wait for work, decided before torch loads: spinning on free cores, sleeping on busy ones.

torch's CPU operators and MKL run their threads on GNU OpenMP, whose threads spin for a while after each
parallel region before they sleep, so the next operator finds them awake. On free cores that is the faster
choice; when another program keeps a core busy, a spinning thread burns the time slices its partner thread is
waiting for. Measured on a 2-core Xeon, 100 training steps of batch 128 through cnnlab.keras, ms a step:

    =================  ==============  =========================  ===========================
    cores              course CNN      MLP (Dense 512-256-...)    with OMP_WAIT_POLICY
    =================  ==============  =========================  ===========================
    free               3.9-4.2         2.7                        PASSIVE: 4.9-5.0 / 4.7-4.9
    one busy program   18-21           16                         PASSIVE: 7.3-7.6 / 3.9
    =================  ==============  =========================  ===========================

libgomp reads its policy once, when torch loads it, so ``import cnnlab`` (which every cnnlab module, the
command line and cnnlab.keras run before torch) counts the tasks ready to run and sets
``OMP_WAIT_POLICY=PASSIVE`` when torch's threads would not each find a core. A policy the user set
(``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``) is kept; once torch is loaded nothing changes. Programs cnnlab starts
(sweep trials, torchrun workers) decide again for themselves.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, MutableMapping

USER_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
CHOSEN_BY_CNNLAB = "CNNLAB_CHOSE_OMP_WAIT_POLICY"  # marks a policy this module set, so a child process decides anew
# A busy program is runnable in every sample; kernel threads and exiting processes come and go within a few ms
# (the median of 5 samples 1 ms apart took one for a busy program in 4 of 30 quiet starts on a 2-core Xeon), so
# what counts is the fewest runnable over 10 ms.
SAMPLES, SAMPLE_INTERVAL_S = 6, 0.002


def threads_per_process(processes: int = 1) -> int:
    """The machine's cores shared out between ``processes`` (torchrun's processes on this machine)."""
    return max(1, (os.cpu_count() or 1) // max(1, processes))


def runnable_tasks() -> int | None:
    """Tasks ready to run on the whole machine now, this one included (/proc/loadavg's 4th field), or None."""
    try:
        with open("/proc/loadavg") as loadavg:
            return int(loadavg.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def own_runnable_threads() -> int:
    """This process's threads ready to run now (at least 1, the one asking).

    They are in /proc/loadavg's count too: NumPy imported before cnnlab leaves OpenBLAS's worker threads spinning
    for a while, and counted as another program they made a quiet machine look busy (the MLP's step 7.5 ms
    instead of 2.5 on a 2-core Xeon).
    """
    running = 0
    try:
        for task in os.scandir("/proc/self/task"):
            try:
                with open(os.path.join(task.path, "stat")) as stat:
                    running += stat.read().rpartition(")")[2].split()[0] == "R"  # the state follows (comm)
            except (OSError, IndexError):
                continue  # a thread that ended meanwhile
    except OSError:
        pass
    return max(1, running)


def other_runnable_tasks() -> int | None:
    """Tasks of other processes ready to run now, or None where /proc does not say."""
    total = runnable_tasks()
    return None if total is None else max(0, total - own_runnable_threads())


def others_running(read: Callable[[], int | None] = other_runnable_tasks) -> int | None:
    """How many other programs' tasks stay ready to run: the fewest over a few samples 2 ms apart, or None."""
    counts = []
    for index in range(SAMPLES):
        count = read()
        if count is None:
            return None
        counts.append(count)
        if index + 1 < SAMPLES:
            time.sleep(SAMPLE_INTERVAL_S)
    return min(counts)


def choose_wait_policy(
    environ: MutableMapping[str, str] = os.environ,
    others: Callable[[], int | None] = others_running,
    torch_loaded: bool | None = None,
) -> str | None:
    """Set OMP_WAIT_POLICY=PASSIVE in ``environ`` when the cores are busy; returns what it set (or None)."""
    if torch_loaded if torch_loaded is not None else "torch" in sys.modules:
        return None  # libgomp has read its settings already
    if environ.get(CHOSEN_BY_CNNLAB):  # inherited from the cnnlab process that started this one
        environ.pop("OMP_WAIT_POLICY", None)
        environ.pop(CHOSEN_BY_CNNLAB)
    if any(name in environ for name in USER_SETTINGS):
        return None
    busy = others()
    processes = int(environ.get("LOCAL_WORLD_SIZE", "1") or 1)  # torchrun's workers share the cores out
    free_cores = (os.cpu_count() or 1) - threads_per_process(processes) * processes
    if busy is None or busy <= max(0, free_cores) + (processes - 1):  # torchrun's siblings count as ours
        return None
    environ["OMP_WAIT_POLICY"], environ[CHOSEN_BY_CNNLAB] = "PASSIVE", "1"
    return "PASSIVE"


def wait_policy() -> str:
    """What this process's OpenMP threads do between operators, in words (``cnnlab bench`` prints it)."""
    policy = os.environ.get("OMP_WAIT_POLICY", "").upper()
    if os.environ.get(CHOSEN_BY_CNNLAB):
        return "sleep (OMP_WAIT_POLICY=PASSIVE: other programs were running when cnnlab started)"
    if policy:
        return f"as OMP_WAIT_POLICY={policy} says"
    if "GOMP_SPINCOUNT" in os.environ:
        return f"spin {os.environ['GOMP_SPINCOUNT']} times, then sleep (GOMP_SPINCOUNT)"
    return "spin, then sleep (OpenMP's default: the cores were free when cnnlab started)"
