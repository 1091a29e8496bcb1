"""Score: upload applicants, see the validation report, decide, review the results, download, record."""

from __future__ import annotations

from typing import NoReturn

import numpy as np
import pandas as pd
import streamlit as st

from core import batch as batches
from core import decisions, plots, prefs
from core.errors import FileError
from core.schema import COLUMN_NOTES, column_guide, parse_amounts
from core.scoring import PROBABILITY
from core.text import compact_count, compact_money, safe_text
from pages.common import (
    chart,
    csv_download,
    data_check_panel,
    download_name,
    estimate_panel,
    forget_upload,
    friendly_errors,
    get_bundle,
    get_explainer,
    group_panel,
    model_page,
    section,
    versions,
)

SHOW_ROWS = 2000  # rows drawn in the results table; the download always has every row
EXPLAIN_CHUNK = 500  # rows explained between progress updates (and chances to cancel)


def _duration(seconds: float) -> str:
    return f"{seconds:,.0f} s" if seconds < 120 else f"{seconds / 60:,.0f} min"


def _recent_eins(exclude: str) -> set[str]:
    from core import storage
    from core.errors import StorageError

    try:
        return storage.recent_eins(365, exclude=exclude)
    except StorageError:
        return set()


def _clear(keep_failure: bool = False) -> None:
    """Forget the scored file and its results (the Clear button, or nothing to show)."""
    for name in ("score", "score_file", "score_group_values") + (() if keep_failure else ("score_failed",)):
        st.session_state.pop(name, None)


def _let_go(upload: object, gen: int) -> None:
    """Drop the server's copy of an upload; the next run draws an empty uploader under a new key."""
    forget_upload(upload)
    st.session_state["score_upload_gen"] = gen + 1


def _fail(message: str, upload: object, gen: int) -> NoReturn:
    """A file that cannot be scored: the message (escaped text) stays above an empty uploader until
    the next file; earlier results are dropped, as a new file replaces them."""
    _clear()
    if upload is None:
        st.error(message)
        st.stop()
    st.session_state["score_failed"] = message
    _let_go(upload, gen)
    st.rerun()


user, version = model_page("Score applicants", "score")
limit_mb = st.get_option("server.maxUploadSize")
st.markdown(
    f"Upload a CSV with the Alphabet Soup columns (up to **{limit_mb} MB**): APPLICATION_TYPE, AFFILIATION, "
    "CLASSIFICATION, USE_CASE, ORGANIZATION, STATUS, INCOME_AMT, SPECIAL_CONSIDERATIONS, ASK_AMT; "
    "EIN and NAME are optional. Every row is checked before scoring."
)
gen = int(st.session_state.get("score_upload_gen", 0))
left, right = st.columns([3, 1])
# a new key once a file is scored (see _let_go); no help icon: the keyboard reaches the button first
upload = left.file_uploader("Applicants CSV", key=f"score_upload_{gen}" if gen else "score_upload")
sample = right.button("Try the sample applicants", key="score_sample")
held: batches.HeldFile | None = st.session_state.get("score_file")
if held is not None and upload is None:
    right.button("Clear results", key="score_clear", on_click=_clear)
    left.caption(
        f"Results below: {safe_text(held.name)} ({held.size / 2**20:,.1f} MB). A new file replaces them."
    )
if st.session_state.get("score_failed"):
    st.error(st.session_state["score_failed"])  # made of escaped text when it was stored

data: bytes | None = None
if upload is not None:
    source_name, data = upload.name, upload.getvalue()
elif sample:
    from core import config

    source_name, data = config.SAMPLE_APPLICANTS.name, config.SAMPLE_APPLICANTS.read_bytes()
elif held is not None:
    source_name = held.name  # the file scored earlier, kept compressed: no new file this run
else:
    _clear(keep_failure=True)  # nothing uploaded: keep nothing
    st.info("Upload a file or try the bundled sample of 300 synthetic applicants.")
    # open until an upload: what a first file needs, and the browser has drawn a table before the
    # results (their table then draws faster: bench/app.py, first upload)
    columns_title = "The columns of a file and the values each accepts"
    with section(columns_title, key="score_columns_open", expanded=True) as box:
        if box.open:
            st.caption(COLUMN_NOTES)
            st.dataframe(column_guide(), hide_index=True, key="score_columns")
    st.stop()
if data is not None:
    st.session_state.pop("score_failed", None)  # a new file: an earlier file's failure is history
    if len(data) > limit_mb * 1024 * 1024:
        _fail(
            f"{safe_text(source_name)} is {len(data) / 2**20:,.0f} MB, over the {limit_mb} MB upload limit. "
            "Split it, or use python -m core score, which streams files of any size.",
            upload,
            gen,
        )

scored: batches.ScoredBatch | None = None
with friendly_errors():
    import hashlib

    bundle = get_bundle(version)
    key = (hashlib.sha256(data).hexdigest() if data is not None else held.sha256, bundle.version)
    cached = st.session_state.get("score")
    if cached and cached[0] == key:
        scored, seen_before = cached[1], cached[2]
    else:
        st.session_state.pop("score", None)  # release the previous file's results first
        st.session_state.pop("score_group_values", None)
        if data is None:  # the held file, with another model version
            data = held.data()
        bar = st.progress(0.0, text="Scoring…")
        approx_rows = max(1, data.count(b"\n"))
        try:
            scored = batches.score_upload(
                bundle,
                data,
                source_name,
                progress=lambda n: bar.progress(min(n / approx_rows, 1.0), text=f"Scored {n:,} rows"),
            )
        except FileError as err:
            bar.empty()
            _fail(f"{safe_text(source_name)}: {safe_text(str(err))}", upload, gen)
        bar.empty()
        # EINs of batches recorded in the last year: read once per upload, not on every rerun
        seen_before = batches.seen_before(scored, _recent_eins(scored.file_sha256))
        st.session_state["score"] = (key, scored, seen_before)
        if held is None or held.sha256 != key[0]:
            st.session_state["score_file"] = batches.HeldFile.of(source_name, data, scored.file_sha256)
        if upload is not None:  # the session keeps the results and the packed file, not the upload
            _let_go(upload, gen)
            st.rerun()
del data
if scored is None:
    st.stop()

# -- validation report -------------------------------------------------------------------------
report = scored.report
st.subheader("Validation")
c1, c2, c3, c4 = st.columns(4)
c1.metric("Rows in file", compact_count(report.n_input), help=f"{report.n_input:,}")
c2.metric("Accepted", compact_count(scored.n), help=f"{scored.n:,}")
c3.metric("Rejected", compact_count(report.n_rejected), help=f"{report.n_rejected:,}")
c4.metric("With warnings", compact_count(report.n_warned), help=f"{report.n_warned:,}")
if report.extra_columns:
    st.caption("Ignored extra columns: " + ", ".join(safe_text(c, 60) for c in report.extra_columns))
if report.n_rejected:
    st.warning(f"{report.n_rejected:,} rows were not scored. Reasons:")
    st.dataframe(report.reasons(), hide_index=True, key="score_reasons")
    with section("Rejected rows", key="score_rejected_open") as box:
        if box.open:
            st.dataframe(batches.rejects_frame(report), hide_index=True, key="score_rejected")
    csv_download(
        "Download rejected rows (CSV)",
        scored.rejects_csv,
        download_name("rejects", source_name),
        "score_rejects_download",
    )
if len(report.warnings):
    with section(f"Warnings ({len(report.warnings):,})", key="score_warnings_open") as box:
        if box.open:
            st.dataframe(report.warnings, hide_index=True, key="score_warnings")
dups = batches.duplicates(scored)
if dups.repeated_ein_rows:
    st.warning(
        f"Repeated EINs: {dups.repeated_ein_rows:,} rows share an EIN with another row "
        f"(first lines: {', '.join(map(str, dups.repeated_ein_lines))})."
    )
if dups.identical_rows:
    st.warning(
        f"Identical rows: {dups.identical_rows:,} rows repeat an earlier row exactly "
        f"(first lines: {', '.join(map(str, dups.identical_lines))})."
    )
if learned := batches.learned_notice(scored.learned, scored.version):
    st.warning(safe_text(learned))
if seen_before.any():
    st.warning(
        f"{int(seen_before.sum()):,} applicants have an EIN that appears in a batch recorded in the last "
        "365 days (column 'EIN seen in the last year')."
    )
if scored.n == 0:
    st.error("No row could be scored. Fix the rejected rows above and upload the file again.")
    st.stop()
data_check_panel(scored.check, "score_checks")

# -- decision ----------------------------------------------------------------------------------
st.subheader("Decision")
mode = st.radio("Select applicants by", ["Threshold", "Budget"], horizontal=True, key="score_mode")
with friendly_errors():
    if mode == "Threshold":
        threshold = st.slider(
            "Recommend when the chance of success is at least",
            0.0,
            1.0,
            float(bundle.threshold),
            0.01,
            key="score_threshold",
        )
        rule = decisions.Rule("threshold", threshold=threshold)
    else:
        b1, b2 = st.columns(2)
        remembered = str(prefs.get(user.name, "budget", ""))
        typed = b1.text_input("Total budget ($, e.g. 1,500,000)", value=remembered, key="score_budget")
        rank_by = b2.selectbox(
            "Rank applicants by", list(decisions.RANK_BY), format_func=decisions.RANK_BY.get, key="score_rank"
        )
        if not typed.strip():
            st.info("Enter the total budget to see who it funds.")
            st.stop()
        budget = parse_amounts(pd.Series([typed])).iloc[0]
        if pd.isna(budget):
            st.error("The budget must be an amount of money, such as 1,500,000.")
            st.stop()
        prefs.put(user.name, "budget", typed.strip())
        b1.caption(f"${budget:,.0f}")
        rule = decisions.Rule("budget", budget=float(budget), rank_by=rank_by)
    selection = batches.decide(scored, rule)
summary = selection.summary(scored.probabilities, scored.asks)
d1, d2, d3, d4 = st.columns(4)
d1.metric("Recommended", compact_count(summary["selected"]), help=f"{summary['selected']:,}")
d2.metric("Not recommended", compact_count(summary["not_selected"]), help=f"{summary['not_selected']:,}")
d3.metric(
    "Total asked by recommended",
    compact_money(summary["total_ask_selected"]),
    help=f"${summary['total_ask_selected']:,.0f}",
)
d4.metric("Expected successes", compact_count(round(summary["expected_successes"], 1)),
          help=f"{summary['expected_successes']:,.2f}")  # fmt: skip
if selection.mode == "budget" and selection.cut_probability is not None:
    st.caption(
        f"The budget ran out at a chance of {selection.cut_probability:.1%}; the last applicant funded "
        f"(line {scored.source_lines[selection.last_funded] if selection.last_funded is not None else '–'}) "
        f"has {scored.probabilities[selection.last_funded] if selection.last_funded is not None else 0:.1%}; "
        f"${selection.money_left:,.0f} is left."
        + (
            f" {selection.straddling} applicants share that chance on both sides of the line."
            if selection.straddling
            else ""
        )
    )

estimate_panel(batches.estimate(scored, selection), scored.check)
with section(
    "Capture curve: what funding more or fewer applicants would capture", key="score_capture_open"
) as box:
    if box.open:
        from core.report import capture_view

        capture = capture_view(
            scored.probabilities,
            scored.asks,
            int(selection.mask.sum()),
            scored.labels(),
            selection.rule.rank_by if selection.mode == "budget" else "probability",
        )
        chart(capture.figure, key="score_capture", summary=capture.sentence)
        st.dataframe(capture.table, hide_index=True, key="score_capture_table")
with section("Groups: who this decision selects", key="score_groups_open") as box:
    if box.open:
        g1, g2 = st.columns(2)
        min_size = g1.number_input("Minimum group size", 1, 10_000, 30, key="score_group_min")
        values_key = ("score_group_values", scored.file_sha256, scored.version)
        if st.session_state.get("score_group_values", (None,))[0] != values_key:
            st.session_state["score_group_values"] = (values_key, batches.group_values(scored, bundle))
        values = st.session_state["score_group_values"][1]
        with friendly_errors():
            labelled = scored.labels() is not None
            report, spots = batches.groups_of(
                scored,
                bundle,
                selection.mask,
                min_size=int(min_size),
                with_weak_spots=labelled,
                values=values,
            )
            group_panel(report, "score_groups", spots)

# -- results -----------------------------------------------------------------------------------
if not scored.explained:  # here, not at scoring: the browser draws the sections above meanwhile
    with st.spinner("Explaining scores…"):
        batches.add_reasons(scored, get_explainer(version))
missing = int((scored.reasons == "").sum())
if missing:
    st.caption(f"Reasons are shown for the {scored.n - missing:,} most likely applicants of {scored.n:,}.")
    per_row = scored.seconds_per_reason()
    about = f" (about {_duration(missing * per_row)})" if per_row is not None else ""
    if st.button(f"Explain the other {missing:,} rows{about}", key="score_explain_all"):
        bar = st.progress(0.0, text="Explaining…")
        st.button("Cancel", key="score_explain_cancel")  # any click reruns the page, which stops this loop
        todo = (scored.reasons == "").nonzero()[0]
        explainer = get_explainer(version)
        for start in range(0, len(todo), EXPLAIN_CHUNK):
            batches.add_reasons(scored, explainer, todo[start : start + EXPLAIN_CHUNK])
            done = min(start + EXPLAIN_CHUNK, len(todo))
            bar.progress(done / len(todo), text=f"Explained {done:,} of {len(todo):,} rows")
        st.rerun()
st.subheader("Results")
order = st.radio("Order", ["File order", "Most likely first"], horizontal=True, key="score_order")
rows = batches.display_positions(scored, order != "File order", SHOW_ROWS)
if scored.n > SHOW_ROWS:
    st.caption(f"Showing {SHOW_ROWS:,} of {scored.n:,} applicants; the download has all.")
shown_table = batches.results_frame(scored, selection, rows)
if seen_before.any():
    shown_table.insert(6, "EIN seen in the last year", np.where(seen_before[rows], "yes", ""))
st.dataframe(
    shown_table,
    hide_index=True,
    key="score_results",
    column_config={
        PROBABILITY: st.column_config.NumberColumn("chance of success", format="%.3f"),
        batches.RECOMMENDED: st.column_config.CheckboxColumn("recommended"),
        batches.REASONS: st.column_config.TextColumn("reasons", width="large"),
    },
)
with section("One applicant's reasons in full", key="score_detail_open") as box:
    if box.open:
        labels = {
            int(pos): f"line {line} · {ein} · {str(name)[:50]}"
            for pos, line, ein, name in zip(
                rows, shown_table["source_line"], shown_table["EIN"], shown_table["NAME"]
            )
        }
        pick = st.selectbox(
            "Applicant (line in the file · EIN · NAME)",
            list(labels),
            format_func=labels.get,
            key="score_detail",
        )
        if pick is not None:
            st.markdown(
                f"Chance of success **{scored.probabilities[pick]:.1%}** · "
                + ("recommended" if selection.mask[pick] else "not recommended")
            )
            for part in (scored.reasons[pick] or "No reasons computed for this row yet.").split("; "):
                st.markdown("- " + safe_text(part))
            if not selection.mask[pick]:
                from core.whatif import CHANGEABLE, DEFAULT_CHANGE

                changeable = st.multiselect(
                    "Fields that may change (the others stay locked)",
                    CHANGEABLE,
                    default=DEFAULT_CHANGE,
                    key="score_cf_fields",
                )
                with friendly_errors():
                    if not changeable:
                        st.info("Choose at least one field that may change.")
                    else:
                        why_not, suggestion = batches.applicant_support(
                            scored, selection, get_explainer(version), np.array([pick]), changeable
                        )
                        st.markdown("**Why not recommended** (fields that lowered the chance):")
                        for reason in why_not[0] or ["No field lowered the chance noticeably."]:
                            st.markdown("- " + safe_text(reason))
                        st.markdown("**What it would take:** " + safe_text(suggestion[0].text))
st.caption(safe_text(plots.score_histogram_summary(scored.probabilities)))
with section("Chart: how the chances of success are spread", key="score_histogram_open") as box:
    if box.open:
        chart(plots.score_histogram(scored.probabilities, selection.threshold), key="score_histogram")

metrics = scored.label_metrics()
if metrics:
    st.subheader("Accuracy on this batch (it carries IS_SUCCESSFUL)")
    m1, m2, m3 = st.columns(3)
    m1.metric("Accuracy", f"{metrics['accuracy']:.1%}")
    m2.metric("ROC AUC", f"{metrics['roc_auc']:.3f}" if metrics.get("roc_auc") is not None else "n/a")
    m3.metric("Rows with a label", f"{metrics['n']:,}")
    chart(plots.confusion_matrix_figure(metrics["confusion"]), key="score_confusion")

# -- download and record -------------------------------------------------------------------------
csv_download(
    "Download scored applicants (CSV)",
    lambda: batches.results_csv(scored, selection),
    download_name("scored", source_name),
    "score_download",
)
if int((~selection.mask).sum()):
    csv_download(
        "Download decline reasons and suggestions (CSV)",
        lambda: batches.decline_letters_csv(scored, selection, get_explainer(version)),
        download_name("decline_reasons", source_name),
        "score_decline_download",
    )
_, _, live = versions()
record_key = (scored.file_sha256, scored.version, rule.key())
recorded = st.session_state.get("score_recorded")
if recorded and recorded[0] == record_key:
    st.success(f"Recorded as batch {recorded[1]}. See History to re-download or override.")
else:
    st.session_state.pop("score_recorded", None)  # belongs to another file, version or rule
    recording = st.session_state.pop("score_recording", False)
    st.button(
        "Recording…" if recording else "Record this batch in History",
        key="score_record",
        type="primary",
        disabled=recording,  # a second click while it runs does nothing
        on_click=lambda: st.session_state.update(score_recording=True),
    )
    if recording:
        with friendly_errors():
            batch_id = batches.record(scored, selection, user.name, live=scored.version == live)
            st.session_state["score_recorded"] = (record_key, batch_id)
            st.rerun()
