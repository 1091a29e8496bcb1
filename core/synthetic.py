"""Seeded generator of an Alphabet-Soup-shaped dataset: the project's own demo data.

The real history may not be shipped with the project, so the demo and the tests use
this: the same 12 columns and value sets, realistic category frequencies, ASK_AMT mostly
5000 with a heavy tail, repeat organisations, and a planted relation to IS_SUCCESSFUL
(through the categories, the amount, words in NAME and a per-organisation effect) so the
model variants have something real to learn. Every name is invented here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.schema import ALL_COLUMNS, TARGET

# (value, relative frequency, effect on the log-odds of success)
_CATS: dict[str, list[tuple[str, float, float]]] = {
    "APPLICATION_TYPE": [
        ("T3", 788, 0.25), ("T4", 45, 0.6), ("T6", 36, 0.5), ("T5", 35, 0.45), ("T19", 31, 0.3),
        ("T8", 22, -0.8), ("T7", 21, -0.2), ("T10", 15, 0.4), ("T9", 5, -1.5), ("T13", 2, -0.5),
        ("T12", 0.6, -0.5), ("T2", 0.5, -0.4), ("T25", 0.1, 0.0), ("T14", 0.1, 0.0),
    ],
    "AFFILIATION": [
        ("Independent", 540, 0.55), ("CompanySponsored", 458, -0.75), ("Family/Parent", 2, 0.0),
        ("National", 1, 0.5), ("Regional", 0.4, 0.0), ("Other", 0.1, 0.0),
    ],
    "CLASSIFICATION": [
        ("C1000", 507, 0.25), ("C2000", 177, 0.2), ("C1200", 140, 0.3), ("C3000", 55, -0.1),
        ("C2100", 54, -1.2), ("C7000", 23, 0.1), ("C1700", 9, 0.2), ("C4000", 6, 0.1),
        ("C5000", 4, 0.0), ("C1270", 3, -0.3), ("C2700", 3, -0.1), ("C2800", 3, 0.0),
        ("C7100", 2, 0.0), ("C1300", 2, -0.2), ("C1280", 1.4, 0.0), ("C1400", 1, 0.0),
        ("C2300", 1, 0.0), ("C1230", 1, 0.0), ("C7200", 0.8, 0.0), ("C1240", 0.8, 0.0),
        ("C8000", 0.5, 0.0), ("C6000", 0.4, 0.0),
    ],
    "USE_CASE": [
        ("Preservation", 819, 0.15), ("ProductDev", 165, -0.1), ("CommunityServ", 12, -0.2),
        ("Heathcare", 4, 0.2), ("Other", 0.1, 0.0),
    ],
    "ORGANIZATION": [
        ("Trust", 686, 0.3), ("Association", 298, -0.3), ("Co-operative", 15, 0.4),
        ("Corporation", 1, 0.0),
    ],
    "INCOME_AMT": [
        ("0", 710, 0.0), ("25000-99999", 109, 0.3), ("100000-499999", 99, 0.2),
        ("1M-5M", 28, 0.1), ("1-9999", 21, 0.1), ("10000-24999", 16, 0.2), ("10M-50M", 7, -0.1),
        ("5M-10M", 6, 0.0), ("50M+", 4, -0.2),
    ],
}  # fmt: skip

_PLACES = [
    "ASHFORD", "BRAMBLE", "CEDAR VALLEY", "DUNMORE", "ELMWOOD", "FAIRHAVEN", "GLENWICK", "HARLOW",
    "IVYBRIDGE", "JUNIPER", "KESTREL", "LARKSPUR", "MAPLEFORD", "NORTHGATE", "OAKHURST",
    "PINECREST", "QUARRY HILL", "RIVERBEND", "SILVERLAKE", "THORNBURY", "UPTON", "VALEMONT",
    "WILLOWDALE", "YARROW", "ZENITH PARK", "BLUE RIDGE", "STONEBRIDGE", "MEADOWVIEW",
]  # fmt: skip
_SUBJECTS = [
    "YOUTH SOCCER", "HIGH SCHOOL BAND", "GARDEN", "HISTORICAL", "ARTS", "ANIMAL RESCUE",
    "LITERACY", "SENIOR CITIZENS", "VETERANS", "SCIENCE", "CHESS", "ROWING", "HOCKEY",
    "THEATRE", "CHORAL", "WILDLIFE", "FOOD PANTRY", "HOUSING", "MUSIC", "NATURE",
]  # fmt: skip
# Organisation-kind words and their planted effect: the signal that generalises to new names.
_KINDS: list[tuple[str, float, float]] = [
    ("BOOSTER CLUB", 0.10, 1.6), ("CLUB", 0.12, 0.9), ("ALUMNI ASSOCIATION", 0.05, 1.0),
    ("PARENT TEACHER ORGANIZATION", 0.07, 1.2), ("FOUNDATION", 0.16, -0.9),
    ("SOCIETY", 0.08, 0.2), ("COUNCIL", 0.06, -0.3), ("FUND", 0.07, -1.1),
    ("TRUST", 0.06, -0.6), ("INC", 0.12, -0.2), ("LEAGUE", 0.06, 0.6), ("CHAPTER", 0.05, 0.8),
]  # fmt: skip


def _pick(rng: np.random.Generator, table: list[tuple[str, float, float]], n: int) -> np.ndarray:
    weights = np.array([w for _, w, _ in table], dtype=float)
    return rng.choice(len(table), size=n, p=weights / weights.sum())


def _organisations(rng: np.random.Generator, n_orgs: int) -> pd.DataFrame:
    kinds = _pick(rng, _KINDS, n_orgs)
    places = rng.integers(len(_PLACES), size=n_orgs)
    subjects = rng.integers(len(_SUBJECTS), size=n_orgs)
    style = rng.random(n_orgs)
    names = []
    for k, p, s, st in zip(kinds, places, subjects, style):
        kind = _KINDS[k][0]
        if st < 0.45:
            names.append(f"{_PLACES[p]} {_SUBJECTS[s]} {kind}")
        elif st < 0.75:
            names.append(f"FRIENDS OF {_PLACES[p]} {_SUBJECTS[s]} {kind}")
        else:
            names.append(f"{_SUBJECTS[s]} {kind} OF {_PLACES[p]}")
    frame = pd.DataFrame(
        {
            "NAME": names,
            "kind_effect": [_KINDS[k][2] for k in kinds],
            "org_effect": rng.normal(0, 1.6, n_orgs),
        }
    )
    # Distinct organisations that happen to share a name are merged, as in the real file.
    return frame.drop_duplicates("NAME").reset_index(drop=True)


def generate(n_rows: int = 6000, random_state: int = 0, with_target: bool = True) -> pd.DataFrame:
    """An Alphabet-Soup-shaped table of ``n_rows`` invented applicants (seeded)."""
    rng = np.random.default_rng(random_state)
    orgs = _organisations(rng, max(20, int(n_rows * 0.7)))
    # Zipf-like repeats: a few organisations apply many times, most once.
    weights = 1.0 / np.arange(1, len(orgs) + 1) ** 0.6
    org_idx = rng.choice(len(orgs), size=n_rows, p=weights / weights.sum())
    data: dict[str, object] = {
        "EIN": rng.choice(np.arange(10_000_000, 99_999_999), size=n_rows, replace=False),
        "NAME": orgs["NAME"].to_numpy()[org_idx],
    }
    logit = np.full(n_rows, -1.25)
    for col, table in _CATS.items():
        idx = _pick(rng, table, n_rows)
        data[col] = np.array([table[i][0] for i in idx], dtype=object)
        logit += 1.8 * np.array([table[i][2] for i in idx])
    data["STATUS"] = np.where(rng.random(n_rows) < 0.9995, 1, 0)
    data["SPECIAL_CONSIDERATIONS"] = np.where(rng.random(n_rows) < 0.001, "Y", "N")
    is_5000 = rng.random(n_rows) < 0.74
    tail = np.exp(rng.normal(10.5, 2.2, n_rows)).clip(5001, 8.6e9)
    ask = np.where(is_5000, 5000, np.round(tail)).astype(np.int64)
    data["ASK_AMT"] = ask
    logit += np.where(is_5000, 0.35, -0.25 - 0.08 * (np.log(ask) - 10.5))
    logit += 1.5 * orgs["kind_effect"].to_numpy()[org_idx] + orgs["org_effect"].to_numpy()[org_idx]
    frame = pd.DataFrame(data)
    if with_target:
        frame[TARGET] = (rng.random(n_rows) < 1 / (1 + np.exp(-logit))).astype(int)
        return frame[ALL_COLUMNS]
    return frame[[c for c in ALL_COLUMNS if c != TARGET]]


def sample_applicants(n_rows: int = 300, random_state: int = 2024) -> pd.DataFrame:
    """Applicants to try scoring with: same generator, no outcome column."""
    return generate(n_rows, random_state=random_state, with_target=False)
