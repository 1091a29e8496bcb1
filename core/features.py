"""Preprocessing: validated applicant rows -> the numeric matrix a network takes.

One field encoder per model, followed by a standard scaler, fitted on training rows only and
saved inside the model bundle as JSON. Every output column belongs to exactly one source field
(``feature_fields_``): the attribution engine relies on that to explain at the level of the
application form.

This module is what serving needs: :class:`Encoding` (how a fitted encoder turns rows into
columns), :class:`Scaling` and :class:`Preprocessing`, read from a bundle's JSON, in plain NumPy,
pandas and Arrow. Fitting them is training's job: ``core.fitting`` holds the scikit-learn
estimators (``FieldEncoder``, ``BinaryAwareScaler``, ``make_preprocessor``), which share this
module's transform code. So a server never imports scikit-learn (about 2 s of start-up, and
scipy.stats with it) unless someone trains or compares models.
"""

from __future__ import annotations

import inspect
import json
import re
from itertools import pairwise

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from core.schema import CATEGORICAL_FIELDS, NAME_FIELD

# The estimators moved to core.fitting; versions saved with a pickled preprocessor name them here.
_FITTING = ("FieldEncoder", "BinaryAwareScaler", "make_preprocessor")


def __getattr__(name: str) -> object:
    """``core.features.FieldEncoder`` etc. still resolve (imported from core.fitting on first use):
    older bundles' pickled preprocessors refer to them by this module's name."""
    if name in _FITTING:
        from core import fitting

        return getattr(fitting, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


OTHER = "(other)"
_TOKEN = re.compile(r"[A-Z0-9]+")


def name_tokens(name: str, bigrams: bool = True) -> list[str]:
    """Words (and adjacent word pairs) of an organisation name, upper-cased."""
    words = _TOKEN.findall(str(name).upper())
    if bigrams:
        return words + [f"{a} {b}" for a, b in pairwise(words)]
    return words


def normalise_name(names: pd.Series) -> pd.Series:
    """Names as the identity of an organisation: upper case, single spaces.

    Organisations repeat, so each distinct spelling is normalised once.
    """
    codes, uniques = pd.factorize(names.astype(object).fillna(""))
    normalised = np.array([" ".join(str(u).upper().split()) for u in uniques], dtype=object)
    return pd.Series(normalised[codes], index=names.index, dtype=object)


_LEGAL = ("INC", "OF", "THE", "CORP", "CORPORATION", "LLC", "INCORPORATED", "CO", "AND", "LTD")
_LEGAL_RE = r"\b(?:" + "|".join(_LEGAL) + r")\b"
_DIGIT_WORD_RE = r"\b[A-Z]*[0-9][A-Z0-9]*\b"

# Keys that group organisations into families: chapters and branches of one body
# ("AMERICAN LEGION POST 12" / "... POST 97") share a key though never a name, so a
# first-time applicant still inherits how its family fared. Words are the name's
# [A-Z0-9]+ runs; "core" words drop those with a digit and legal filler (INC, OF, THE...).
NAME_FAMILIES = (
    "identity",  # the normalised name itself
    "no digits",  # words without a digit
    "core words",
    "first word",
    "first two words",
    "first three words",
    "last two core words",  # last two words that are not legal filler (digits kept)
    "last core word",
)


def _squash(s: pa.Array, pattern: str) -> pa.Array:
    """Replace a pattern by a space, then single spaces, trimmed."""
    return pc.utf8_trim(
        pc.replace_substring_regex(pc.replace_substring_regex(s, pattern, " "), " +", " "), " "
    )


def _keep(s: pa.Array, pattern: str) -> pa.Array:
    """The part of each text that ``pattern`` (one group named k) matches; blank if none."""
    return pc.fill_null(pc.struct_field(pc.extract_regex(s, pattern), "k"), "")


def _family_keys(uniques: np.ndarray, families: list[str]) -> dict[str, np.ndarray]:
    """Every asked family's key for distinct names, in Arrow's string kernels (no Python loop)."""
    words = _squash(pa.array(np.asarray(uniques, dtype=object), type=pa.string()), "[^A-Z0-9]+")
    no_digits = _squash(words, _DIGIT_WORD_RE)
    core = _squash(no_digits, _LEGAL_RE)
    recipes = {
        "no digits": lambda: no_digits,
        "core words": lambda: core,
        "first word": lambda: _keep(words, "^(?P<k>[^ ]+)"),
        "first two words": lambda: _keep(words, "^(?P<k>[^ ]+(?: [^ ]+)?)"),
        "first three words": lambda: _keep(words, "^(?P<k>[^ ]+(?: [^ ]+){0,2})"),
        "last two core words": lambda: _keep(_squash(words, _LEGAL_RE), "(?P<k>[^ ]+(?: [^ ]+)?)$"),
        "last core word": lambda: _keep(core, "(?P<k>[^ ]+)$"),
    }
    return {
        f: np.asarray(uniques, dtype=object)
        if f == "identity"
        else recipes[f]().to_numpy(zero_copy_only=False)
        for f in families
    }


def keys_by_family(names: np.ndarray, families: list[str]) -> dict[str, np.ndarray]:
    """Each normalised name's key in every asked family (blank stays blank); distinct names once."""
    codes, uniques = pd.factorize(np.asarray(names, dtype=object))
    return {f: keys[codes] for f, keys in _family_keys(uniques, families).items()}


def name_keys(names: np.ndarray, family: str) -> np.ndarray:
    """Each normalised name's key in one family."""
    return keys_by_family(names, [family])[family]


def _name_table(names: np.ndarray, y: np.ndarray) -> dict[str, tuple[float, int]]:
    """Successes and applications per organisation name (blank names excluded)."""
    stats = pd.DataFrame({"n": names, "y": y}).groupby("n")["y"].agg(["sum", "count"])
    stats = stats.drop(index="", errors="ignore")
    return {k: (float(s), int(c)) for k, s, c in stats.itertuples()}


def frame_names(X: pd.DataFrame) -> np.ndarray:
    """Normalised NAME of every row; blanks when the file has no NAME column (new organisations)."""
    return (
        normalise_name(X[NAME_FIELD]).to_numpy() if NAME_FIELD in X else np.array([""] * len(X), dtype=object)
    )


def known_names(X: pd.DataFrame) -> set[str]:
    """The organisations a model was trained on."""
    return set(frame_names(X)) - {""}


def seen_mask(rows: pd.DataFrame, known: set[str]) -> np.ndarray:
    """Whether each row's organisation is among ``known`` (never for a blank name). Each distinct
    name is looked up once (organisations repeat; pandas' isin would copy the whole set each call)."""
    codes, uniques = pd.factorize(frame_names(rows))
    found = np.fromiter((u != "" and u in known for u in uniques), dtype=bool, count=len(uniques))
    return found[codes] if len(uniques) else np.zeros(len(codes), dtype=bool)


class Encoding:
    """How a fitted field encoder turns validated rows into numeric columns, each source field
    separately (the learned state ends in ``_``). Serving reads it from a bundle's JSON;
    ``core.fitting.FieldEncoder`` is the scikit-learn estimator that learns it and shares this code.

    rare_thresholds: per field, categories with fewer training rows go to an "Other" column
        (the original analysis: APPLICATION_TYPE < 500, CLASSIFICATION < 1000).
    min_frequency: the same cut-off for every other categorical field.
    status_numeric: STATUS as one 0/1 column (as the original) instead of one-hot.
    ask_transform: "raw" (dollars, as the original) or "log" (log1p plus an is-5000 flag).
    name_words: size of the NAME word/bigram vocabulary (0: NAME not used for words).
    name_target: add the smoothed success log-odds and log count of the organisation.
    name_families: also those two statistics for each named family key (``NAME_FAMILIES``).
    """

    def __init__(
        self,
        rare_thresholds: dict[str, int] | None = None,
        min_frequency: int = 1,
        status_numeric: bool = True,
        ask_transform: str = "raw",
        name_words: int = 0,
        name_min_df: int = 2,
        name_target: bool = False,
        name_families: tuple[str, ...] = (),
        n_folds: int = 5,
        smoothing: float = 2.0,
        random_state: int = 0,
    ) -> None:
        self.rare_thresholds = rare_thresholds
        self.min_frequency = min_frequency
        self.status_numeric = status_numeric
        self.ask_transform = ask_transform
        self.name_words = name_words
        self.name_min_df = name_min_df
        self.name_target = name_target
        self.name_families = name_families
        self.n_folds = n_folds
        self.smoothing = smoothing
        self.random_state = random_state

    def get_params(self, deep: bool = True) -> dict[str, object]:
        """The settings, as scikit-learn's ``get_params`` gives them."""
        return {p: getattr(self, p) for p in ENCODER_PARAMS}

    @property
    def uses_name(self) -> bool:
        return bool(self.name_words) or self.name_target

    def _families(self) -> list[str]:
        return ["identity", *[f for f in self.name_families if f != "identity"]]

    def _cat_fields(self) -> list[str]:
        fields = list(CATEGORICAL_FIELDS) + ["SPECIAL_CONSIDERATIONS"]
        if not self.status_numeric:
            fields.append("STATUS")
        return fields

    def _layout(self) -> tuple[list[str], list[str]]:
        names: list[str] = []
        fields: list[str] = []

        def add(field: str, column: str) -> None:
            names.append(column)
            fields.append(field)

        for col in self._cat_fields():
            for v in self.categories_[col]:
                add(col, f"{col}={v}")
            if self.has_other_[col]:
                add(col, f"{col}={OTHER}")
        if self.status_numeric:
            add("STATUS", "STATUS")
        if self.ask_transform == "log":
            add("ASK_AMT", "log1p(ASK_AMT)")
            add("ASK_AMT", "ASK_AMT==5000")
        else:
            add("ASK_AMT", "ASK_AMT")
        if self.name_words:
            for tok in self.vocabulary_:
                add(NAME_FIELD, f"NAME has '{tok}'")
        if self.name_target:
            for fam in self._families():
                label = "NAME" if fam == "identity" else f"NAME {fam}"
                add(NAME_FIELD, f"{label} success log-odds")
                add(NAME_FIELD, f"{label} log count")
        return names, fields

    # -- transforming --------------------------------------------------------------------
    def _name_block(self, names: np.ndarray, tables: dict[str, dict], prior: float) -> np.ndarray:
        """Statistics of every family key, side by side; each distinct name tokenised once."""
        codes, uniques = pd.factorize(names)
        keys = _family_keys(uniques, self._families())
        return np.hstack([self._name_stats(keys[f], tables[f], prior) for f in self._families()])[codes]

    def _name_stats(self, names: np.ndarray, stats: dict[str, tuple[float, int]], prior: float) -> np.ndarray:
        """Smoothed success log-odds and log count per row; unseen names get the prior."""
        a = self.smoothing
        codes, uniques = pd.factorize(names)
        pairs = np.array([stats.get(n, (0.0, 0)) for n in uniques], dtype=float).reshape(-1, 2)
        p = (pairs[:, 0] + a * prior) / (pairs[:, 1] + a)
        out = np.column_stack([np.log(p / (1 - p)), np.log1p(pairs[:, 1])]).astype(np.float32)
        return out[codes]

    def _encode(self, X: pd.DataFrame, name_block: np.ndarray | None) -> sp.csr_matrix:
        """All columns as a sparse matrix: one-hot and word blocks stay sparse (few ones a row)."""
        n = len(X)
        rows = np.arange(n)
        blocks: list[sp.spmatrix | np.ndarray] = []
        for col in self._cat_fields():
            # Look each distinct value up once (as text, like fit); rows take their value's slot.
            codes, uniques = pd.factorize(X[col], use_na_sentinel=False)
            cats = self.categories_[col]
            width = len(cats) + int(self.has_other_[col])
            other = len(cats) if self.has_other_[col] else -1
            pos = pd.Index(cats, dtype=object).get_indexer(pd.Index(uniques).astype(str))[codes]
            pos[pos < 0] = other
            hit = pos >= 0
            blocks.append(
                sp.csr_matrix((np.ones(hit.sum(), np.float32), (rows[hit], pos[hit])), shape=(n, width))
            )
        if self.status_numeric:
            blocks.append(X["STATUS"].astype(np.float32).to_numpy()[:, None])
        ask = X["ASK_AMT"].astype(float).to_numpy()
        if self.ask_transform == "log":
            blocks.append(np.log1p(ask).astype(np.float32)[:, None])
            blocks.append((ask == 5000).astype(np.float32)[:, None])
        else:
            blocks.append(ask.astype(np.float32)[:, None])
        if self.name_words or self.name_target:
            names = frame_names(X)
        if self.name_words:
            # Organisations repeat: tokenise each distinct name once.
            codes, uniques = pd.factorize(names)
            indptr, indices = [0], []
            for name in uniques:
                found = {self.vocabulary_[t] for t in name_tokens(name) if t in self.vocabulary_}
                indices.extend(sorted(found))
                indptr.append(len(indices))
            shape = (len(uniques), len(self.vocabulary_))
            unique_block = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=shape)
            blocks.append(unique_block[codes] if n else unique_block[:0])
        if self.name_target:
            blocks.append(
                name_block
                if name_block is not None
                else self._name_block(names, self.name_stats_, self.prior_)
            )
        return sp.hstack([sp.csr_matrix(b) if isinstance(b, np.ndarray) else b for b in blocks], format="csr")

    def transform_sparse(self, X: pd.DataFrame) -> sp.csr_matrix:
        """Encoded rows as a sparse matrix (fast scoring never builds the dense one)."""
        return self._encode(X, None)

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Encode rows with what was learned in fit (never refits)."""
        return self._encode(X, None).toarray()

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.array(self.feature_names_, dtype=object)


ENCODER_PARAMS = tuple(inspect.signature(Encoding.__init__).parameters)[1:]  # the settings, by name


class Scaling:
    """A fitted standard scaler's arrays and its transform (``(X - mean_) / scale_`` in X's float type,
    in place on a copy, as scikit-learn's ``StandardScaler.transform`` computes it), without
    scikit-learn.
    ``kind``: "standard", or "binary_aware" (0/1 columns were left as they are when it was fitted)."""

    def __init__(
        self,
        kind: str,
        mean_: np.ndarray | None,
        var_: np.ndarray | None,
        scale_: np.ndarray | None,
        n_features_in_: int,
        n_samples_seen_: object,
        with_mean: bool = True,
        with_std: bool = True,
        copy: bool = True,
        binary_: np.ndarray | None = None,
    ) -> None:
        self.kind = kind
        self.mean_, self.var_, self.scale_ = mean_, var_, scale_
        self.n_features_in_ = n_features_in_
        self.n_samples_seen_ = n_samples_seen_
        self.with_mean, self.with_std, self.copy = with_mean, with_std, copy
        if binary_ is not None:
            self.binary_ = binary_

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected {self.n_features_in_} columns, got shape {X.shape}")
        out = np.array(X, dtype=X.dtype if X.dtype in (np.float32, np.float64) else np.float64)
        if self.with_mean:
            out -= self.mean_.astype(out.dtype)
        if self.with_std:
            out /= self.scale_.astype(out.dtype)
        return out


class Preprocessing:
    """A fitted encoding followed by its scaling: ``named_steps`` and ``transform`` as in the
    scikit-learn ``Pipeline`` it was fitted as."""

    def __init__(self, encode: Encoding, scale: Scaling) -> None:
        self.steps = [("encode", encode), ("scale", scale)]
        self.named_steps = dict(self.steps)

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        return self.named_steps["scale"].transform(self.named_steps["encode"].transform(X))


def feature_fields(pipeline: object) -> list[str]:
    """The source field of every output column of a fitted preprocessor."""
    return list(pipeline.named_steps["encode"].feature_fields_)


# -- the fitted preprocessing as JSON (bundles carry no pickle) -----------------------------
PREPROCESSOR_FORMAT = "screening-preprocessor/1"
_ENCODER_STATE = ("categories_", "has_other_", "seen_values_", "feature_names_", "feature_fields_")


def preprocessor_to_json(pipeline: object) -> str:
    """A fitted ``make_preprocessor`` pipeline (or the ``Preprocessing`` read back from one) as plain
    JSON: the encoder's settings and what it learned (categories, vocabulary, name statistics) and
    the scaler's arrays. Read back with ``preprocessor_from_json``; loading it runs no code from the
    file, unlike a pickle."""
    enc, scaler = pipeline.named_steps["encode"], pipeline.named_steps["scale"]
    params = dict(sorted(enc.get_params().items()))  # scikit-learn gives them sorted by name
    params["name_families"] = list(params["name_families"])
    state: dict[str, object] = {k: getattr(enc, k) for k in _ENCODER_STATE}
    state["ask_range_"] = [float(v) for v in enc.ask_range_]
    if hasattr(enc, "vocabulary_"):
        state["vocabulary_"] = {str(t): int(i) for t, i in enc.vocabulary_.items()}
    if hasattr(enc, "name_stats_"):
        state["prior_"] = float(enc.prior_)
        state["name_stats_"] = {
            fam: {
                "names": list(table),
                "successes": [float(s) for s, _ in table.values()],
                "counts": [int(c) for _, c in table.values()],
            }
            for fam, table in enc.name_stats_.items()
        }

    def floats(values: object) -> list[float] | None:
        return None if values is None else [float(v) for v in np.asarray(values).ravel()]

    seen = scaler.n_samples_seen_
    scale = {
        "kind": getattr(scaler, "kind", "standard"),  # scikit-learn's own StandardScaler has none
        "with_mean": bool(scaler.with_mean),
        "with_std": bool(scaler.with_std),
        "copy": bool(scaler.copy),
        "n_features_in_": int(scaler.n_features_in_),
        "n_samples_seen_": int(seen) if np.ndim(seen) == 0 else [int(v) for v in np.ravel(seen)],
        "mean_": floats(scaler.mean_),
        "var_": floats(scaler.var_),
        "scale_": floats(scaler.scale_),
    }
    if scale["kind"] == "binary_aware":
        scale["binary_"] = [bool(v) for v in scaler.binary_]
    doc = {"format": PREPROCESSOR_FORMAT, "encoder": {"params": params, "state": state}, "scaler": scale}
    return json.dumps(doc, separators=(",", ":"))


def preprocessor_from_json(text: str | bytes) -> Preprocessing:
    """The preprocessing ``preprocessor_to_json`` wrote, as plain ``Preprocessing`` (ValueError on
    anything else). It transforms exactly as the fitted pipeline did."""
    doc = json.loads(text)
    if not isinstance(doc, dict) or doc.get("format") != PREPROCESSOR_FORMAT:
        raise ValueError("not a preprocessor written by this program")
    params = dict(doc["encoder"]["params"])
    if set(params) != set(ENCODER_PARAMS):
        raise ValueError("the encoder's settings are not this program's")
    params["name_families"] = tuple(params["name_families"])
    enc = Encoding(**params)
    state = doc["encoder"]["state"]
    for k in _ENCODER_STATE:
        setattr(enc, k, state[k])
    enc.ask_range_ = tuple(state["ask_range_"])
    if "vocabulary_" in state:
        enc.vocabulary_ = dict(state["vocabulary_"])
    if "name_stats_" in state:
        enc.prior_ = float(state["prior_"])
        enc.name_stats_ = {
            fam: {n: (s, c) for n, s, c in zip(t["names"], t["successes"], t["counts"], strict=True)}
            for fam, t in state["name_stats_"].items()
        }
    s = doc["scaler"]
    if s["kind"] not in ("standard", "binary_aware"):
        raise ValueError(f"unknown scaler kind {s['kind']!r}")
    width = int(s["n_features_in_"])
    arrays = {}
    for k in ("mean_", "var_", "scale_"):
        values = None if s[k] is None else np.asarray(s[k], dtype=np.float64)
        if values is not None and values.shape != (width,):
            raise ValueError(f"scaler {k} has {values.size} values for {width} columns")
        arrays[k] = values
    if (s["with_mean"] and arrays["mean_"] is None) or (s["with_std"] and arrays["scale_"] is None):
        raise ValueError("the scaler lacks the arrays its settings need")
    seen = s["n_samples_seen_"]
    scaler = Scaling(
        s["kind"],
        n_features_in_=width,
        n_samples_seen_=np.int64(seen) if isinstance(seen, int) else np.asarray(seen, dtype=np.int64),
        with_mean=bool(s["with_mean"]),
        with_std=bool(s["with_std"]),
        copy=bool(s["copy"]),
        binary_=np.asarray(s["binary_"], dtype=bool) if s["kind"] == "binary_aware" else None,
        **arrays,
    )
    if len(enc.feature_names_) != width:
        raise ValueError("the encoder's columns and the scaler's do not match")
    return Preprocessing(enc, scaler)
