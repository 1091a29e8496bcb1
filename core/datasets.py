"""Training histories: read, validate and describe one, without importing any training code."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import FileError
from core.reading import read_table
from core.schema import ID_FIELD, NAME_FIELD, REQUIRED_FIELDS, TARGET, ValidationReport, validate
from core.synthetic import generate

SYNTHETIC_ROWS = 8000
# The fixed evaluation rows: every version of every variant holds out the same rows of any history
# (a stable hash of the row's EIN, its id; of its cells when it has none), and no served network
# trains on them, so two versions are compared on rows neither has seen.
EVALUATION_SHARE = 0.2
EVALUATION_SALT = "alphabet-soup-screening/evaluation-rows/v1"
EVALUATION_RULE = {
    "kind": "fixed-hash",
    "key": "EIN (the row's cells when EIN is blank)",
    "share": EVALUATION_SHARE,
    "salt": EVALUATION_SALT,
}
MIN_TRAINING_ROWS = 50


@dataclass
class TrainingData:
    """A validated history ready for training, and where it came from."""

    frame: pd.DataFrame
    source: str
    sha256: str
    report: ValidationReport
    synthetic: bool = False


def load_training_data(source: str | Path | bytes | None = None, name: str | None = None) -> TrainingData:
    """Read and validate a history with IS_SUCCESSFUL; None means the synthetic demo data."""
    if source is None:
        raw = generate(SYNTHETIC_ROWS, random_state=0).astype(str)
        digest = hashlib.sha256(raw.to_csv(index=False).encode()).hexdigest()
        label = f"synthetic demo data ({SYNTHETIC_ROWS} rows, seed 0)"
    else:
        if not isinstance(source, bytes) and not Path(source).is_file():
            raise FileError(f"File not found: {source}")
        blob = source if isinstance(source, bytes) else Path(source).read_bytes()
        raw = read_table(blob)
        digest = hashlib.sha256(blob).hexdigest()
        label = name or (Path(source).name if not isinstance(source, bytes) else "uploaded file")
    report = validate(raw, need_target=True)
    frame = report.accepted.reset_index(drop=True)
    if len(frame) < MIN_TRAINING_ROWS:
        raise FileError(
            f"Only {len(frame)} valid rows with IS_SUCCESSFUL; training needs at least {MIN_TRAINING_ROWS}."
        )
    if frame[TARGET].nunique() < 2:
        raise FileError("IS_SUCCESSFUL has only one value; training needs both successes and failures.")
    return TrainingData(frame, label, digest, report, synthetic=source is None)


@dataclass
class Splits:
    """Row positions of the three splits of one training file."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    kind: str = "random"

    def served_on(self, refitted: bool) -> np.ndarray:
        """The rows the served network learned from: training, plus validation when refitted."""
        return np.sort(np.concatenate([self.train, self.val])) if refitted else self.train


def evaluation_mask(frame: pd.DataFrame) -> np.ndarray:
    """Which rows of a history are evaluation rows (the same rows whatever the file, seed or version)."""
    if "EIN" in frame:
        keys = frame["EIN"].astype(str).str.strip().to_numpy(dtype=object)
    else:
        keys = np.full(len(frame), "", dtype=object)
    blank = np.flatnonzero(keys == "")
    if len(blank):
        cells = frame.iloc[blank].drop(columns=[TARGET], errors="ignore").astype(str)
        keys[blank] = ("cells:" + cells.agg("|".join, axis=1)).to_numpy()
    cut = int(EVALUATION_SHARE * 2**64)
    return np.fromiter(
        (
            int.from_bytes(hashlib.sha256(f"{EVALUATION_SALT}|{k}".encode()).digest()[:8], "big") < cut
            for k in keys
        ),
        dtype=bool,
        count=len(keys),
    )


def row_fingerprints(frame: pd.DataFrame) -> np.ndarray:
    """One 64-bit fingerprint per validated row: a hash of all its application fields (EIN, NAME and
    the required fields, never the outcome). A bundle keeps those of the rows its served network
    learned from, so a labelled file given later can be checked for rows the network has seen."""
    fields = [ID_FIELD, NAME_FIELD, *REQUIRED_FIELDS]
    cells = pd.DataFrame(
        {f: frame[f].astype(str) if f in frame else pd.Series("", index=frame.index) for f in fields}
    )
    joined = cells[fields[0]].str.cat([cells[f] for f in fields[1:]], sep="\x1f")
    digests = (hashlib.sha256(f"row|{k}".encode()).digest()[:8] for k in joined)
    return np.fromiter(
        (int.from_bytes(d, "big", signed=True) for d in digests),
        dtype=np.int64,
        count=len(joined),
    )


def evaluation_words(rows: int, total: int) -> str:
    """Which rows a version's test figures come from, in words (card, pages, report, CLI)."""
    return (
        f"the {rows:,} fixed evaluation rows of its {total:,}-row history (rows whose EIN falls in the "
        f"{EVALUATION_SHARE:.0%} evaluation share; the same rows for every version); the served network "
        "never trained on them"
    )


def fixed_splits(frame: pd.DataFrame, seed: int = 0, val_size: float = 0.2) -> Splits:
    """Test = the fixed evaluation rows; the rest split (stratified, seeded) into train and validation."""
    from sklearn.model_selection import train_test_split  # training only: serving never imports sklearn

    y = frame[TARGET].to_numpy()
    test = np.flatnonzero(evaluation_mask(frame))
    rest = np.flatnonzero(~evaluation_mask(frame))
    strat = y[rest] if np.bincount(y[rest].astype(int)).min() >= 2 else None
    train, val = train_test_split(rest, test_size=val_size, random_state=seed + 1, stratify=strat)
    return Splits(np.sort(train), np.sort(val), test, "fixed-hash")


def split_rows(
    y: np.ndarray,
    seed: int = 0,
    test_size: float = 0.2,
    val_size: float = 0.2,
    groups: np.ndarray | None = None,
) -> Splits:
    """Stratified random splits, or (with ``groups``) no group on two sides of the test cut."""
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    idx = np.arange(len(y))
    if groups is None:
        rest, test = train_test_split(idx, test_size=test_size, random_state=seed, stratify=y)
        kind = "random"
    else:
        gss = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
        rest, test = next(gss.split(idx, y, groups))
        kind = "grouped"
    train, val = train_test_split(rest, test_size=val_size, random_state=seed + 1, stratify=y[rest])
    return Splits(np.sort(train), np.sort(val), np.sort(test), kind)
