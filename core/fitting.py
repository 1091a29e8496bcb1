"""Fitting the preprocessing (training only): the scikit-learn estimators.

``FieldEncoder`` learns what ``core.features.Encoding`` applies (categories, vocabulary, name
statistics), ``BinaryAwareScaler`` is a ``StandardScaler`` that leaves 0/1 columns alone, and
``make_preprocessor`` puts them in a ``Pipeline``. A bundle stores the fitted pipeline as JSON
(``core.features.preprocessor_to_json``) and serving reads it back as plain ``Preprocessing``,
so scikit-learn is imported only here, by training and by model evaluation.

Target statistics of NAME (how often a repeat organisation succeeded) are computed
out-of-fold in ``fit_transform`` so no training row ever sees its own label.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from core.features import (
    NAME_FAMILIES,
    Encoding,
    _name_table,
    frame_names,
    keys_by_family,
    name_tokens,
)
from core.schema import TARGET


class FieldEncoder(BaseEstimator, TransformerMixin, Encoding):
    """Encode each source field separately into numeric columns (see ``Encoding`` for the
    parameters). Parameters follow sklearn's rules; learned state ends in ``_``."""

    def __setstate__(self, state: dict) -> None:
        """Read encoders pickled before family keys existed (one flat table of names)."""
        state.setdefault("name_families", ())
        stats = state.get("name_stats_")
        if isinstance(stats, dict) and "identity" not in stats:
            state["name_stats_"] = {"identity": stats}
        self.__dict__.update(state)

    # -- fitting -------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: pd.Series | np.ndarray | None = None) -> FieldEncoder:
        """Learn categories, vocabulary and name statistics from training rows only."""
        self._fit(X, y)
        return self

    def _fit(self, X: pd.DataFrame, y: pd.Series | np.ndarray | None) -> dict[str, np.ndarray] | None:
        """``fit``; returns each row's family keys (for fit_transform's out-of-fold pass)."""
        if TARGET in X.columns or "EIN" in X.columns:
            X = X.drop(columns=[c for c in (TARGET, "EIN") if c in X.columns])
        thresholds = self.rare_thresholds or {}
        self.categories_: dict[str, list[str]] = {}
        self.has_other_: dict[str, bool] = {}
        self.seen_values_: dict[str, list[str]] = {}
        for col in self._cat_fields():
            counts = X[col].astype(str).value_counts()
            cut = thresholds.get(col, self.min_frequency)
            kept = sorted(counts[counts >= cut].index.tolist())
            self.categories_[col] = kept
            self.has_other_[col] = bool((counts < cut).any())
            self.seen_values_[col] = sorted(counts.index.tolist())
        ask = X["ASK_AMT"].astype(float)
        self.ask_range_ = (float(ask.min()), float(ask.max()))
        names = frame_names(X) if self.uses_name else None
        if self.name_words:
            df = Counter(tok for n in names for tok in set(name_tokens(n)))
            common = [t for t, c in df.most_common() if c >= self.name_min_df]
            self.vocabulary_ = {t: i for i, t in enumerate(sorted(common[: self.name_words]))}
        unknown = set(self.name_families) - set(NAME_FAMILIES)
        if unknown:
            raise ValueError(f"Unknown name families {sorted(unknown)}; choose from {NAME_FAMILIES}")
        keys = None
        if self.name_target:
            if y is None:
                raise ValueError("name_target needs the training labels")
            y = np.asarray(y, dtype=float)
            keys = keys_by_family(names, self._families())
            self.prior_ = float(y.mean())
            self.name_stats_ = {fam: _name_table(keys[fam], y) for fam in self._families()}
        self.feature_names_, self.feature_fields_ = self._layout()
        return keys

    def fit_transform(
        self, X: pd.DataFrame, y: pd.Series | np.ndarray | None = None, **_: object
    ) -> np.ndarray:
        """Fit, then encode the training rows with out-of-fold name statistics."""
        keys = self._fit(X, y)
        if keys is None:
            return self.transform(X)
        y = np.asarray(y, dtype=float)
        block = np.empty((len(X), 2 * len(keys)), dtype=np.float32)
        folds = KFold(self.n_folds, shuffle=True, random_state=self.random_state)
        for fit_idx, enc_idx in folds.split(block):
            # Statistics and prior from the other folds only: no row sees its own label.
            prior = float(y[fit_idx].mean())
            block[enc_idx] = np.hstack(
                [
                    self._name_stats(keys[f][enc_idx], _name_table(keys[f][fit_idx], y[fit_idx]), prior)
                    for f in self._families()
                ]
            )
        return self._encode(X, block).toarray()


class BinaryAwareScaler(StandardScaler):
    """StandardScaler that leaves 0/1 indicator columns as they are.

    Standardising a word indicator seen in 2 of 20,000 rows multiplies it by ~100, which
    lets rare words dominate; numeric columns are still centred and scaled.
    """

    kind = "binary_aware"  # as core.features.Scaling names it

    def fit(self, X: np.ndarray, y: object = None, sample_weight: object = None) -> BinaryAwareScaler:
        super().fit(X, y, sample_weight)
        binary = np.all((X == 0) | (X == 1), axis=0)
        self.mean_ = np.where(binary, 0.0, self.mean_)
        self.scale_ = np.where(binary, 1.0, self.scale_)
        self.binary_ = binary
        return self


def make_preprocessor(scale: str = "all", **encoder_params: object) -> Pipeline:
    """FieldEncoder + scaler, the whole preprocessing saved with a model.

    ``scale="all"`` standardises every column (the original analysis); ``"numeric"``
    leaves indicator columns as 0/1.
    """
    scaler = BinaryAwareScaler() if scale == "numeric" else StandardScaler()
    return Pipeline([("encode", FieldEncoder(**encoder_params)), ("scale", scaler)])
