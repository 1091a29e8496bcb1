"""Shared bits for the benchmarks: where the real history is, peak memory."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import config  # noqa: E402

DATA = config.SHARED_TRAIN_CSV


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def require_data() -> Path:
    if not DATA.exists():
        sys.exit(f"benchmark needs the real history at {DATA}")
    return DATA


def rss_mb(pid: int) -> float:
    """Current resident memory of another process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def require_models() -> None:
    """Stop with a clear message unless $SCREENING_HOME has trained model versions."""
    from core.registry import list_versions

    if not list_versions(config.models_dir())[0]:
        sys.exit(f"no models in {config.models_dir()}: run `make models` first")


def applicant_files(folder: Path, sizes: dict[str, int]) -> dict[str, Path]:
    """Synthetic applicant CSVs in ``folder``: name -> rows (each with its own seed)."""
    from core.synthetic import sample_applicants

    out = {}
    for seed, (name, rows) in enumerate(sizes.items(), start=5):
        out[name] = folder / f"{name}.csv"
        sample_applicants(rows, random_state=seed).to_csv(out[name], index=False)
    return out
