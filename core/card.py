"""The model card: one typed record of what a model version is, how it was made and where it is weak.

It is the bundle's ``meta.json`` (``schema_version`` 2). Cards written before the schema existed
(plain metadata dicts) still load: missing fields get their defaults. Pages, the CLI and reports
read these attributes, never raw keys.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

import numpy as np

SCHEMA_VERSION = 2
INTENDED_USE = (
    "Rank applications to the Alphabet Soup funding programme by their estimated chance of using "
    "the money effectively, to help staff decide whom to fund. It supports a human decision; it is "
    "not a decision on its own, and it says nothing about applicants unlike those in its training data."
)


@dataclass(frozen=True)
class TrainingDataInfo:
    """Where a model's training rows came from."""

    source: str = ""
    synthetic: bool = False
    sha256: str = ""
    rows: int = 0
    rejected_rows: int = 0


@dataclass(frozen=True)
class ModelCard:
    """Everything known about one immutable model version."""

    variant: str
    version: str
    created: str
    label: str = ""
    description: str = ""
    schema_version: int = SCHEMA_VERSION
    content_hash: str = ""
    migrated_from: str | None = None
    seed: int = 0
    training_data: TrainingDataInfo = field(default_factory=TrainingDataInfo)
    splits: dict = field(default_factory=dict)
    feature_fields: tuple[str, ...] = ()
    feature_names: tuple[str, ...] = ()
    known_values: dict = field(default_factory=dict)
    ask_range: tuple[float, float] | None = None
    uses_name: bool = False
    threshold: float = 0.5
    temperature: float = 1.0
    epochs_run: int = 0
    best_epoch: int = 0
    train_seconds: float = 0.0
    background_rows: int = 0
    parameters: int = 0
    spec: dict = field(default_factory=dict)
    library_versions: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    final_fit: dict | None = None
    evaluation: dict = field(default_factory=dict)  # which rows the test figures come from
    intended_use: str = INTENDED_USE

    # -- reading ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict) -> ModelCard:
        """A card from meta.json, current or older (unknown keys ignored, missing ones defaulted)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["training_data"] = TrainingDataInfo(
            **{
                k: v
                for k, v in (data.get("training_data") or {}).items()
                if k in TrainingDataInfo.__dataclass_fields__
            }
        )
        for key in ("feature_fields", "feature_names"):
            values[key] = tuple(data.get(key) or ())
        if data.get("ask_range"):
            values["ask_range"] = (float(data["ask_range"][0]), float(data["ask_range"][1]))
        values["schema_version"] = int(data.get("schema_version", 1))
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        return cls.from_dict(json.loads(text))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["schema_version"] = SCHEMA_VERSION
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=_json_default)

    # -- what pages ask ----------------------------------------------------------------------
    @property
    def source_fields(self) -> list[str]:
        """The application-form fields this model reads, in form order."""
        return list(dict.fromkeys(self.feature_fields))

    @property
    def synthetic(self) -> bool:
        return bool(self.training_data.synthetic)

    @property
    def test(self) -> dict:
        return self.metrics.get("test") or {}

    @property
    def validation(self) -> dict:
        return self.metrics.get("validation") or {}

    @property
    def grouped(self) -> dict:
        return self.metrics.get("grouped") or {}

    @property
    def test_accuracy(self) -> float | None:
        return self.test.get("accuracy")

    @property
    def validation_accuracy(self) -> float:
        return float(self.validation.get("accuracy") or 0.0)

    @property
    def first_time(self) -> dict:
        return self.test.get("new_organisations") or {}

    @property
    def repeat(self) -> dict:
        return self.test.get("seen_organisations") or {}

    @property
    def fixed_evaluation(self) -> bool:
        """Its test figures come from the fixed evaluation rows, which its served network never saw."""
        return self.evaluation.get("kind") == "fixed-hash"

    def evaluation_text(self) -> str:
        """Which rows this version's test figures come from, in words."""
        if self.fixed_evaluation:
            return str(self.evaluation.get("words") or "the fixed evaluation rows")
        n = self.test.get("n")
        rows = f"{n:,} " if n else ""
        if self.final_fit is not None:
            return (
                f"its random test split ({rows}rows) as evaluated before it was refitted on every row: the "
                "served network has trained on those rows (trained before fixed evaluation rows existed)"
            )
        return f"its random test split ({rows}rows), held out from its training"

    def evaluation_short(self) -> str:
        """A few words for tables: where the test figures come from."""
        if self.fixed_evaluation:
            return "fixed evaluation rows, never trained on"
        if self.final_fit is not None:
            return "random split, then refitted on it (seen)"
        return "random test split, never trained on"

    def summary(self) -> str:
        """One line for sidebars and listings."""
        acc = self.test_accuracy
        data = "synthetic demo data" if self.synthetic else f"{self.training_data.rows:,} real rows"
        acc_text = (
            f"test accuracy {acc:.1%} ({self.evaluation_short()})" if acc is not None else "no test accuracy"
        )
        return f"{self.label or self.variant}: {acc_text}, trained {self.created[:10]} on {data}"

    def limitations(self) -> list[str]:
        """Plain-words weaknesses, each from a measured fact of this version."""
        out: list[str] = []
        if self.synthetic:
            out.append(
                "Trained on synthetic demo data: its numbers say nothing about real applicants. "
                "Do not use it for real decisions."
            )
        overall, new, seen = self.test.get("accuracy"), self.first_time, self.repeat
        if overall is not None and new.get("accuracy") is not None and new.get("n"):
            gap = (overall - new["accuracy"]) * 100
            if gap > 0.5:
                out.append(
                    f"On first-time organisations (not in its training data) accuracy is {gap:.1f} points "
                    f"lower ({new['accuracy']:.1%} on {new['n']:,} test rows) than overall ({overall:.1%})."
                )
        if seen.get("accuracy") is not None and new.get("accuracy") is not None and self.uses_name:
            out.append(
                "It reads the organisation NAME: repeat organisations are scored mostly on their own record "
                f"({seen['accuracy']:.1%} accurate), which can entrench past outcomes."
            )
        grouped = self.grouped
        if grouped.get("accuracy") is not None and overall is not None:
            out.append(
                "On a split where no organisation appears on both sides, accuracy is "
                f"{grouped['accuracy']:.1%} "
                f"(vs {overall:.1%} on the random split)."
            )
        ece = self.test.get("ece")
        if ece is not None and ece > 0.03:
            out.append(f"Its chances are less well calibrated than goal (ECE {ece:.3f} > 0.03).")
        n_test = self.test.get("n")
        if n_test is not None and n_test < 1000:
            out.append(f"Its test figures rest on only {n_test:,} rows and are uncertain.")
        out.append(
            "It cannot see anything outside the nine application fields"
            + (" and NAME" if self.uses_name else "")
            + "; a change in how applications are filled in or in the programme makes it less reliable."
        )
        return out

    def to_markdown(self) -> str:
        """The card as a Markdown document (``python -m core models card``)."""
        td = self.training_data
        lines = [
            f"# Model card: {self.version}",
            "",
            f"- Variant: {self.variant} ({self.label})",
            f"- Created: {self.created}",
            f"- Content hash: {self.content_hash}",
            f"- Decision threshold: {self.threshold:.2f}",
            "",
            "## Intended use",
            "",
            self.intended_use,
            "",
            "## Model",
            "",
            self.description,
            "",
            "## Training data",
            "",
            f"- Source: {td.source} ({'synthetic' if td.synthetic else 'real'})",
            f"- sha256: {td.sha256}",
            f"- Rows: {td.rows:,} ({td.rejected_rows:,} invalid rows left out)",
            f"- Split: {', '.join(f'{k} {v}' for k, v in self.splits.items())}",
            "",
            "## Metrics",
            "",
            f"Measured on {self.evaluation_text()}.",
            "",
            "| rows | accuracy | ROC AUC | log loss | ECE |",
            "|---|---|---|---|---|",
        ]
        for label, m in (
            ("all", self.test),
            ("first-time organisations", self.first_time),
            ("repeat organisations", self.repeat),
            ("grouped split", self.grouped),
        ):
            if m.get("n"):
                lines.append(
                    f"| {label} ({m['n']:,}) | {_fmt(m.get('accuracy'))} | {_fmt(m.get('roc_auc'))} | "
                    f"{_fmt(m.get('log_loss'))} | {_fmt(m.get('ece'))} |"
                )
        lines += ["", "## Limitations", ""] + [f"- {text}" for text in self.limitations()]
        lines += ["", "## Library versions", ""] + [f"- {k}: {v}" for k, v in self.library_versions.items()]
        return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _json_default(value: object) -> object:
    if isinstance(value, np.integer | np.floating):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
