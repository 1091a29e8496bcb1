"""Preprocessing is learned from training rows only and never reads the target or EIN."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.features import FieldEncoder, make_preprocessor, name_tokens
from core.schema import TARGET
from core.variants import VARIANTS


def test_every_variant_pipeline_excludes_target_and_ein(clean_df: pd.DataFrame) -> None:
    for spec in VARIANTS.values():
        pipe = make_preprocessor(**spec.encoder).fit(clean_df, clean_df[TARGET])
        names = " ".join(pipe.named_steps["encode"].feature_names_)
        fields = set(pipe.named_steps["encode"].feature_fields_)
        assert "IS_SUCCESSFUL" not in names and "EIN" not in names
        assert TARGET not in fields and "EIN" not in fields
        assert ("NAME" in fields) == spec.uses_name


def test_target_column_values_do_not_change_features(clean_df: pd.DataFrame) -> None:
    enc = FieldEncoder(**VARIANTS["baseline"].encoder).fit(clean_df)
    flipped = clean_df.assign(**{TARGET: 1 - clean_df[TARGET]})
    np.testing.assert_array_equal(enc.transform(clean_df), enc.transform(flipped))


def test_fitted_on_training_rows_only(clean_df: pd.DataFrame) -> None:
    train, other = clean_df.iloc[:1000], clean_df.iloc[1000:].copy()
    pipe = make_preprocessor(**VARIANTS["tuned"].encoder).fit(train, train[TARGET])
    scaler_mean = pipe.named_steps["scale"].mean_.copy()
    vocab = dict(pipe.named_steps["encode"].vocabulary_)
    other["NAME"] = "ZZQX UNSEENWORD CLUB"
    pipe.transform(other)
    np.testing.assert_array_equal(pipe.named_steps["scale"].mean_, scaler_mean)
    assert pipe.named_steps["encode"].vocabulary_ == vocab
    assert "ZZQX" not in vocab
    # the scaler's statistics are those of the training rows
    encoded = pipe.named_steps["encode"].fit_transform(train, train[TARGET])
    np.testing.assert_allclose(scaler_mean, encoded.mean(axis=0), rtol=1e-4, atol=1e-5)


def test_rare_categories_are_binned_like_the_original(clean_df: pd.DataFrame) -> None:
    enc = FieldEncoder(rare_thresholds={"APPLICATION_TYPE": 500, "CLASSIFICATION": 1000}).fit(clean_df)
    counts = clean_df["APPLICATION_TYPE"].value_counts()
    assert enc.categories_["APPLICATION_TYPE"] == sorted(counts[counts >= 500].index)
    assert enc.has_other_["APPLICATION_TYPE"]
    row = clean_df.iloc[[0]].assign(APPLICATION_TYPE="T999")
    x = enc.transform(row)
    other_col = enc.feature_names_.index("APPLICATION_TYPE=(other)")
    assert x[0, other_col] == 1.0


def test_every_output_column_has_one_source_field(clean_df: pd.DataFrame) -> None:
    enc = FieldEncoder(**VARIANTS["tuned"].encoder).fit(clean_df, clean_df[TARGET])
    x = enc.transform(clean_df.iloc[:10])
    assert x.shape[1] == len(enc.feature_fields_) == len(enc.feature_names_)


def test_name_statistics_are_out_of_fold(clean_df: pd.DataFrame) -> None:
    """A training row's own label never enters its own NAME encoding."""
    df = clean_df.copy()
    enc = FieldEncoder(**VARIANTS["tuned"].encoder)
    names = FieldEncoder(**VARIANTS["tuned"].encoder).fit(df, df[TARGET]).feature_names_
    cols = [i for i, n in enumerate(names) if n.startswith("NAME success")]
    base = enc.fit_transform(df, df[TARGET])[:, cols]
    for i in [0, 5, 17]:
        flipped = df[TARGET].to_numpy().copy()
        flipped[i] = 1 - flipped[i]
        changed = FieldEncoder(**VARIANTS["tuned"].encoder).fit_transform(df, flipped)[:, cols]
        assert changed[i, 0] == base[i, 0], "row's own label leaked into its encoding"
    # organisations that appear once get the prior: no label of their own to learn from
    once = df["NAME"].map(df["NAME"].value_counts()) == 1
    prior = np.log(df[TARGET].mean() / (1 - df[TARGET].mean()))
    assert np.allclose(base[once.to_numpy(), 0], prior, atol=0.35)


def test_missing_name_column_means_new_organisations(clean_df: pd.DataFrame) -> None:
    pipe = make_preprocessor(**VARIANTS["tuned"].encoder).fit(clean_df, clean_df[TARGET])
    x = pipe.transform(clean_df.drop(columns=["NAME"]).iloc[:5])
    assert np.isfinite(x).all()


def test_name_tokens() -> None:
    assert name_tokens("Friends of the Park, Inc.") == [
        "FRIENDS",
        "OF",
        "THE",
        "PARK",
        "INC",
        "FRIENDS OF",
        "OF THE",
        "THE PARK",
        "PARK INC",
    ]
