"""Model variants, declared as data: adding a variant is adding one entry to ``VARIANTS``.

The first four reproduce the original analysis (its 10-tanh/8-tanh/sigmoid network and
the three changes it tried); ``tuned`` is this project's own network, which also reads
the organisation NAME (its words, and how a repeat organisation fared before).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

BASELINE_ENCODER = {"rare_thresholds": {"APPLICATION_TYPE": 500, "CLASSIFICATION": 1000}}
TUNED_ENCODER = {
    "min_frequency": 5,
    "status_numeric": False,
    "ask_transform": "log",
    "name_words": 1500,
    "name_min_df": 2,
    "name_target": True,
    "name_families": (
        "no digits",
        "core words",
        "first word",
        "first two words",
        "first three words",
        "last two core words",
        "last core word",
    ),
}


@dataclass(frozen=True)
class VariantSpec:
    """Everything that defines one variant: preprocessing, architecture, training recipe."""

    name: str
    label: str
    description: str
    encoder: dict = field(default_factory=lambda: dict(BASELINE_ENCODER))
    scale: str = "all"  # "all" columns standardised (original) or "numeric" (indicators stay 0/1)
    hidden: tuple[tuple[int, str], ...] = ((10, "tanh"), (8, "tanh"))
    l2: float = 0.0
    batchnorm: bool = False
    dropout: float = 0.0
    learning_rate: float = 3e-3  # Adam; with batch 256 this matches batch 32 at 1e-3 in far fewer steps
    lr_drop_epoch: int | None = None  # learning rate divided by lr_drop_factor after this epoch
    lr_drop_factor: float = 10.0
    epochs: int = 100
    batch_size: int = 256
    early_stopping: bool = True
    patience: int = 10
    calibrate: bool = False  # temperature-scale the output on the validation split
    # After evaluation, refit on train + validation (never the evaluation rows) for the best epoch
    # count found, keeping the temperature: more organisations seen, same recipe.
    refit_full: bool = False

    @property
    def uses_name(self) -> bool:
        return bool(self.encoder.get("name_words")) or bool(self.encoder.get("name_target"))

    def to_dict(self) -> dict:
        return asdict(self)


VARIANTS: dict[str, VariantSpec] = {
    spec.name: spec
    for spec in [
        VariantSpec(
            "baseline",
            "Baseline (original analysis)",
            "EIN and NAME dropped, rare APPLICATION_TYPE (<500) and CLASSIFICATION (<1000) "
            "binned, one-hot, scaled; Dense(10, tanh) → Dense(8, tanh) → Dense(1, sigmoid), Adam.",
        ),
        VariantSpec(
            "l2",
            "Baseline + L2(0.01)",
            "The baseline with an L2(0.01) penalty on every Dense kernel.",
            l2=0.01,
        ),
        VariantSpec(
            "lr_schedule",
            "Baseline + learning-rate drop",
            "The baseline with the learning rate divided by ten after epoch 10.",
            lr_drop_epoch=10,
        ),
        VariantSpec(
            "batchnorm",
            "Baseline + batch normalisation",
            "The baseline with BatchNormalization after each hidden layer.",
            batchnorm=True,
        ),
        VariantSpec(
            "tuned",
            "Tuned (reads NAME)",
            "Words of the organisation NAME, its out-of-fold success record and that of its "
            "name family (chapters of one body), log ASK_AMT; "
            "Dense(64, relu) → Dropout → Dense(32, relu) → Dense(1, sigmoid), L2, "
            "early stopping, temperature-calibrated; refitted on every row but the fixed evaluation rows.",
            encoder=TUNED_ENCODER,
            scale="numeric",
            hidden=((64, "relu"), (32, "relu")),
            l2=1e-4,
            dropout=0.3,
            learning_rate=5e-4,
            batch_size=256,
            patience=10,
            calibrate=True,
            refit_full=True,
        ),
    ]
}
DEFAULT_VARIANTS = list(VARIANTS)


def get_variant(name: str) -> VariantSpec:
    """Look a variant up by name, with a clear message for a typo."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"Unknown variant {name!r}; choose from {', '.join(VARIANTS)}") from None
