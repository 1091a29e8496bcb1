"""Preprocessing is learned from training rows only and never reads the target or EIN."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.features import NAME_FAMILIES, name_keys, name_tokens, normalise_name
from core.fitting import FieldEncoder, make_preprocessor
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
    # the organisation's own record first, then each family key's
    cols = [i for i, n in enumerate(names) if n.endswith("success log-odds")]
    assert len(cols) == 1 + len(VARIANTS["tuned"].encoder["name_families"])
    base = enc.fit_transform(df, df[TARGET])[:, cols]
    for i in [0, 5, 17]:
        flipped = df[TARGET].to_numpy().copy()
        flipped[i] = 1 - flipped[i]
        changed = FieldEncoder(**VARIANTS["tuned"].encoder).fit_transform(df, flipped)[:, cols]
        assert np.array_equal(changed[i], base[i]), "row's own label leaked into its encoding"
        assert not np.array_equal(changed, base), "the flipped label should reach other rows"
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


def test_chapters_share_a_family_key() -> None:
    names = np.array(["AMERICAN LEGION POST 12", "AMERICAN LEGION POST 97", "FRIENDS OF THE PARK INC", ""])
    assert len(set(name_keys(names[:2], "no digits"))) == 1
    assert list(name_keys(names, "first two words")) == ["AMERICAN LEGION"] * 2 + ["FRIENDS OF", ""]
    assert name_keys(names, "core words")[2] == "FRIENDS PARK"
    assert name_keys(names, "last core word")[2] == "PARK"
    assert list(name_keys(names, "identity")) == list(names)


def test_a_new_chapter_inherits_its_family_record() -> None:
    rows = pd.DataFrame(
        {
            "NAME": [f"ROTARY CLUB {i}" for i in range(20)] + [f"ALPHA {i} SOCIETY" for i in range(20)],
            "APPLICATION_TYPE": "T3",
            "AFFILIATION": "Independent",
            "CLASSIFICATION": "C1000",
            "USE_CASE": "Preservation",
            "ORGANIZATION": "Trust",
            "STATUS": 1,
            "INCOME_AMT": "0",
            "SPECIAL_CONSIDERATIONS": "N",
            "ASK_AMT": 5000,
        }
    )
    y = np.array([1] * 20 + [0] * 20)
    enc = FieldEncoder(name_target=True, name_families=("no digits",)).fit(rows, y)
    fresh = rows.iloc[[0, 20]].assign(NAME=["ROTARY CLUB 999", "ALPHA 999 SOCIETY"])
    x = pd.DataFrame(enc.transform(fresh), columns=enc.feature_names_)
    own, family = x["NAME success log-odds"], x["NAME no digits success log-odds"]
    assert own[0] == own[1], "never-seen names get the prior"
    assert family[0] > 2 > -2 > family[1], "a known family's record reaches its new chapter"


def test_encoder_pickled_before_family_keys_still_scores(clean_df: pd.DataFrame) -> None:
    enc = FieldEncoder(**{**VARIANTS["tuned"].encoder, "name_families": ()}).fit(clean_df, clean_df[TARGET])
    expected = enc.transform(clean_df.iloc[:20])
    state = dict(enc.__dict__)
    del state["name_families"]
    state["name_stats_"] = state["name_stats_"]["identity"]  # the old flat table
    old = FieldEncoder.__new__(FieldEncoder)
    old.__setstate__(state)
    restored = pickle.loads(pickle.dumps(old))
    assert np.array_equal(restored.transform(clean_df.iloc[:20]), expected)


_FILLER = {"INC", "OF", "THE", "CORP", "CORPORATION", "LLC", "INCORPORATED", "CO", "AND", "LTD"}


def _plain(words: list[str]) -> list[str]:
    return [w for w in words if w.isalpha()]


# The family keys spelled out word by word: the vectorised version must agree exactly.
REFERENCE_FAMILIES = {
    "no digits": _plain,
    "core words": lambda w: [x for x in _plain(w) if x not in _FILLER],
    "first word": lambda w: w[:1],
    "first two words": lambda w: w[:2],
    "first three words": lambda w: w[:3],
    "last two core words": lambda w: [x for x in w if x not in _FILLER][-2:],
    "last core word": lambda w: [x for x in _plain(w) if x not in _FILLER][-1:],
}


NAME_TEXT = st.text(alphabet=st.sampled_from(list("AB12 -,.'&ÉßinoftINCOFTHE")), max_size=30)


@settings(max_examples=150, deadline=None)
@given(st.lists(NAME_TEXT, max_size=20))
def test_family_keys_match_their_word_by_word_definition(raw: list[str]) -> None:
    names = normalise_name(pd.Series(raw, dtype=object)).to_numpy()
    assert set(REFERENCE_FAMILIES) | {"identity"} == set(NAME_FAMILIES)
    for family, rule in REFERENCE_FAMILIES.items():
        expected = [" ".join(rule(re.findall(r"[A-Z0-9]+", n))) for n in names]
        assert list(name_keys(names, family)) == expected, family


def test_unknown_family_is_refused(clean_df: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="Unknown name families"):
        FieldEncoder(name_target=True, name_families=("first word", "zodiac")).fit(clean_df, clean_df[TARGET])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_fitted_preprocessing_round_trips_through_json_exactly(
    clean_df: pd.DataFrame, variant: str
) -> None:
    import json

    from core.features import preprocessor_from_json, preprocessor_to_json

    spec = VARIANTS[variant]
    X, y = clean_df.drop(columns=[TARGET]), clean_df[TARGET]
    pipe = make_preprocessor(spec.scale, **spec.encoder)
    pipe.fit(X.iloc[:400], y.iloc[:400])
    text = preprocessor_to_json(pipe)
    doc = json.loads(text)  # plain JSON: no code, no pickle
    assert doc["format"] == "screening-preprocessor/1"
    back = preprocessor_from_json(text)
    np.testing.assert_array_equal(back.transform(X.iloc[400:]), pipe.transform(X.iloc[400:]))
    enc, again = pipe.named_steps["encode"], back.named_steps["encode"]
    assert again.get_params() == enc.get_params()
    assert again.feature_names_ == enc.feature_names_ and again.ask_range_ == enc.ask_range_
    assert back.named_steps["scale"].kind == ("binary_aware" if spec.scale == "numeric" else "standard")
    assert preprocessor_to_json(back) == text
    # what serving reads back is plain NumPy: no scikit-learn object in it
    from core.features import Encoding, Preprocessing, Scaling

    assert type(back) is Preprocessing
    assert type(again) is Encoding and type(back.named_steps["scale"]) is Scaling


def test_a_preprocessor_json_that_does_not_fit_is_refused(clean_df: pd.DataFrame) -> None:
    import json

    from core.features import preprocessor_from_json, preprocessor_to_json

    pipe = make_preprocessor().fit(clean_df.drop(columns=[TARGET]), clean_df[TARGET])
    doc = json.loads(preprocessor_to_json(pipe))
    with pytest.raises(ValueError, match="not a preprocessor written by this program"):
        preprocessor_from_json(json.dumps({**doc, "format": "other"}))
    doc["scaler"]["mean_"] = doc["scaler"]["mean_"][:-1]
    with pytest.raises(ValueError, match="scaler mean_ has"):
        preprocessor_from_json(json.dumps(doc))


def test_seen_mask_matches_normalised_names_and_never_a_blank() -> None:
    from core.features import seen_mask

    rows = pd.DataFrame({"NAME": ["Acme  Trust", "ACME TRUST", "", None, "Other", "acme trust "]})
    known = {"ACME TRUST", ""}  # a blank in the set still never counts as seen
    assert seen_mask(rows, known).tolist() == [True, True, False, False, False, True]
    assert seen_mask(rows.iloc[:0], known).tolist() == []
    assert seen_mask(pd.DataFrame({"EIN": ["1", "2"]}), known).tolist() == [False, False]
