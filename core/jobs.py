"""Background training jobs: train in a thread so nobody's scoring waits, report progress.

One job at a time per process (training saturates the CPU anyway). The app polls
``current_job()``; bundles are saved atomically, so scoring keeps using the previous
bundle until the new one is complete.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from core.datasets import TrainingData


@dataclass
class TrainingJob:
    """Progress of one training run, updated by the worker thread, read by the UI."""

    variants: list[str]
    seed: int
    source: str
    started: float = field(default_factory=time.time)
    ended: float | None = None
    status: str = "running"  # running | done | failed
    current: str | None = None
    epochs: dict[str, tuple[int, int]] = field(default_factory=dict)  # variant -> (epoch, max)
    curves: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    finished: list[str] = field(default_factory=list)
    error: str | None = None
    metas: dict = field(default_factory=dict)  # variant -> ModelCard of the new version
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def progress(self, variant: str, epoch: int, max_epochs: int, logs: dict) -> None:
        with self.lock:
            if self.current != variant and self.current is not None and self.current not in self.finished:
                self.finished.append(self.current)
            self.current = variant
            self.epochs[variant] = (epoch, max_epochs)
            curve = self.curves.setdefault(variant, {"loss": [], "val_loss": []})
            curve["loss"].append(float(logs.get("loss", float("nan"))))
            curve["val_loss"].append(float(logs.get("val_loss", float("nan"))))

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "status": self.status,
                "current": self.current,
                "epochs": dict(self.epochs),
                "curves": {k: {m: list(v) for m, v in c.items()} for k, c in self.curves.items()},
                "finished": list(self.finished),
                "error": self.error,
                "variants": list(self.variants),
                "elapsed": (self.ended or time.time()) - self.started,
                "versions": {k: v.version for k, v in self.metas.items()},
            }


_lock = threading.Lock()
_job: TrainingJob | None = None
_thread: threading.Thread | None = None


def current_job() -> TrainingJob | None:
    return _job


def is_running() -> bool:
    return _thread is not None and _thread.is_alive()


def start_training(
    data: TrainingData, variants: list[str], seed: int, models_dir: Path, max_epochs: int | None = None
) -> TrainingJob:
    """Start training in a daemon thread; raises RuntimeError when a job is already running."""
    global _job, _thread
    with _lock:
        if is_running():
            raise RuntimeError("A training run is already in progress; wait for it to finish.")
        job = TrainingJob(list(variants), seed, data.source)

        def work() -> None:
            try:
                from core.workflow import train_variants  # TensorFlow only when someone trains

                metas = train_variants(
                    data,
                    variants,
                    seed=seed,
                    models_dir=models_dir,
                    progress=job.progress,
                    max_epochs=max_epochs,
                )
                with job.lock:
                    job.metas = metas
                    job.finished = list(variants)
                    job.status = "done"
                    job.ended = time.time()
            except Exception as err:  # reported to the user, the old bundles keep serving
                with job.lock:
                    job.status = "failed"
                    job.ended = time.time()
                    job.error = f"{type(err).__name__}: {err}"
                traceback.print_exc()

        _job = job
        _thread = threading.Thread(target=work, name="training", daemon=True)
        _thread.start()
        return job


def wait(timeout: float | None = None) -> None:
    """Block until the running job ends (tests, CLI)."""
    if _thread is not None:
        _thread.join(timeout)
