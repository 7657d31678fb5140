"""Device choice and reproducibility: the two helpers every chapter calls first."""
from __future__ import annotations

import os
import random

import numpy as np


def get_device(prefer: str | None = None):
    """The ``torch.device`` to train on: CUDA when available, else the CPU.

    Args:
        prefer: ``"cpu"`` or ``"cuda"`` to force a choice (``"cuda"`` fails clearly without a GPU).
            The environment variable ``LSTM_RL_DEVICE`` does the same for a whole run.
    """
    import torch

    prefer = prefer or os.environ.get("LSTM_RL_DEVICE")
    prefer = None if prefer is None else str(prefer)      # a torch.device works too
    if prefer is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if prefer not in ("cpu", "cuda") and not prefer.startswith("cuda:"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N'; got {prefer!r}")
    if prefer.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {prefer!r} was asked for, but torch sees no CUDA GPU on this machine")
    return torch.device(prefer)


def noise(like, generator=None, uniform: bool = False):
    """Standard normal (or, with ``uniform``, U[0, 1)) noise shaped like the tensor ``like``, on its device
    and dtype. ``generator`` draws on its own device (a ``torch.Generator()`` is a CPU one), so a seeded
    CPU generator gives the same numbers whether the model runs on the CPU or a GPU."""
    import torch

    draw = torch.rand if uniform else torch.randn
    if generator is None:
        return draw(like.shape, device=like.device, dtype=like.dtype)
    return draw(like.shape, generator=generator, device=generator.device, dtype=like.dtype).to(like.device)


def config_from_preset(config_class, presets: dict, task: str, overrides: dict):
    """``config_class`` built from ``presets[task]``, then ``overrides`` (``env_kwargs`` merged, not
    replaced, so that ``env_kwargs={"length": 20}`` keeps the preset's other environment settings)."""
    if task not in presets:
        raise ValueError(f"no preset for {task!r}; presets exist for {sorted(presets)}")
    settings = {**presets[task], **overrides}
    if "env_kwargs" in overrides:
        settings["env_kwargs"] = {**presets[task].get("env_kwargs", {}), **overrides["env_kwargs"]}
    return config_class(**settings)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's ``random``, NumPy's global generator and PyTorch (CPU and every GPU).

    Returns a fresh ``np.random.Generator(seed)`` for code that prefers an explicit generator.
    The same seed gives the same numbers on the same machine; across machines (or CPU vs GPU)
    floating-point results may differ in the last bits.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import torch
    except ImportError:  # NumPy-only chapters work without torch
        return np.random.default_rng(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return np.random.default_rng(seed)


def available_cpus() -> int:
    """The CPU cores this process may really use: its affinity mask, capped by a cgroup CPU quota
    (containers, Binder, CI runners), never just ``os.cpu_count()``, which counts the whole machine."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):   # not on Linux
        n = os.cpu_count() or 1
    for path, parse in (("/sys/fs/cgroup/cpu.max", lambda t: t.split()),                       # cgroup v2
                        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", lambda t: [t.strip(), None])):  # cgroup v1
        try:
            quota, period = parse(open(path).read())
            if quota in ("max", "-1"):
                continue
            if period is None:
                period = open("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read().strip()
            n = min(n, max(1, int(int(quota) // int(period))))
        except (OSError, ValueError):
            continue
    return max(1, n)


def available_memory() -> int:
    """Bytes of memory this process may still use: the cgroup limit minus what the cgroup already uses
    (containers, Binder's 2 GB), else the kernel's ``MemAvailable``; a large number when neither is known."""
    for limit_path, used_path in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),          # v2
                                  ("/sys/fs/cgroup/memory/memory.limit_in_bytes",                         # v1
                                   "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = open(limit_path).read().strip()
            if limit == "max" or int(limit) >= 1 << 60:     # v1 writes "no limit" as a huge number
                continue
            return max(0, int(limit) - int(open(used_path).read().strip()))
        except (OSError, ValueError):
            continue
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 1 << 40


#: What one worker process of :func:`map_processes` costs: Python, torch and a small agent, measured at
#: about 226 MB on Linux; rounded up so that a pool never takes the last of the memory.
WORKER_MEMORY = 300 * 2**20


def default_workers() -> int:
    """How many worker processes :func:`map_processes` starts by default: one per usable CPU core
    (:func:`available_cpus`), but no more than fit in the memory left (:func:`available_memory`,
    :data:`WORKER_MEMORY` each), and at least one. On Binder (1 CPU, 2 GB) that is 1."""
    return max(1, min(available_cpus(), available_memory() // WORKER_MEMORY))


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def map_processes(fn, jobs: list, workers: int | None = None, desc: str = "runs", progress: bool = True,
                  executor=None) -> list:
    """``[fn(job) for job in jobs]``, spread over worker processes; results in the order of ``jobs``.

    Small networks on a CPU use one core badly: two training runs side by side, one thread each,
    finish about twice as fast as the same runs one after another. ``workers`` defaults to the
    CPU cores this process may use, as many as fit in memory (:func:`default_workers`; 1 when a GPU is
    present: the runs then share the GPU one at a time, in this process). ``fn`` must be importable (a module-level function
    of the library, e.g. ``ppo.run_experiment``), and each job picklable (e.g. a dict of settings;
    an environment given as a factory must then be a module-level function, not a lambda).

    ``executor``: any ``concurrent.futures.Executor`` to run the jobs on instead of the local pool,
    e.g. a Dask ``distributed.Client().get_executor()`` or Ray's ``ray.util.ProcessPoolExecutor`` for
    a sweep over a cluster; it is used as it is and not shut down here. Each job must run in a process
    of its own (threads share torch's global random generator, so seeded runs side by side in threads
    would not repeat), and a process pool should start its workers with ``spawn`` (forking a process
    that has already run torch can hang), as the default pool does.

    A progress bar counts finished runs; Ctrl-C stops the pool and returns the results finished so
    far (``None`` for the others).
    """
    from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from tqdm import tqdm   # the one progress-bar mechanism of the library (as TrainingProgress)

    import torch

    if executor is not None and not isinstance(executor, Executor):
        raise TypeError(f"executor must be a concurrent.futures.Executor (e.g. ProcessPoolExecutor, a Dask client's "
                        f"get_executor(), Ray's ProcessPoolExecutor); got {type(executor).__name__}")
    if workers is None:
        workers = 1 if torch.cuda.is_available() else default_workers()
    workers = max(1, min(int(workers), len(jobs) or 1))
    results = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc=desc, disable=not progress, ncols=90)
    if workers == 1 and executor is None:
        try:
            for k, job in enumerate(jobs):
                results[k] = fn(job)
                bar.update(1)
        except KeyboardInterrupt:
            print(f"Interrupted: {bar.n} of {len(jobs)} {desc} finished; keeping those.")
        bar.close()
        return results
    own, futures = executor is None, {}
    if own:
        threads = max(1, available_cpus() // workers)
        executor = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker,
                                       initargs=(threads,))
    try:
        futures = {executor.submit(fn, job): k for k, job in enumerate(jobs)}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            bar.update(1)
    except KeyboardInterrupt:
        print(f"Interrupted: {bar.n} of {len(jobs)} {desc} finished; keeping those.")
        for future in futures:
            future.cancel()
    finally:
        bar.close()
        if own:
            executor.shutdown(wait=True, cancel_futures=True)
    return results
