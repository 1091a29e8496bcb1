"""What every page shares: the gate, the sidebar, the model in use, cached resources, messages.

Every page script starts with ``page_setup(permission)``. It refuses to render anything unless
the session holds an authenticated user (or, with no accounts at all, the server listens on
localhost only), whatever mode Streamlit runs the page in: through ``st.navigation`` or as a
stand-alone script of the ``pages/`` folder. Pages only collect input, call one core function
per action, and render.
"""

from __future__ import annotations

import logging
import os
import re
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

from core import auth, config, registry
from core.auth import User
from core.card import ModelCard
from core.errors import BundleError, ScreeningError, StorageError
from core.text import safe_text

log = logging.getLogger("screening")
PAGE_NAMES = ("score", "history", "review", "explain", "compare", "models", "train")
SESSION_IDLE_S = float(os.environ.get("SCREENING_SESSION_IDLE_MINUTES", "30")) * 60


# -- the gate -------------------------------------------------------------------------------
def _accounts() -> dict[str, dict]:
    try:
        return auth.load_accounts()
    except (ValueError, OSError):
        st.error("The staff accounts file is unreadable. Recreate it with: python -m core users add NAME")
        st.stop()


def _client() -> str:
    try:
        return st.context.ip_address or "unknown"
    except Exception:  # no request context (tests)
        return "unknown"


def signed_in_user() -> User | None:
    """This session's authenticated user; the local analyst when no accounts exist and the server
    listens on localhost only; None otherwise. A session idle for SESSION_IDLE_S is signed out."""
    accounts = _accounts()
    mode = auth.access_mode(st.get_option("server.address"), accounts)
    if mode == "local":
        return User("local", "analyst")
    if mode == "refuse":
        return None
    user = st.session_state.get("user")
    if not isinstance(user, User) or user.name not in accounts:
        return None
    now = time.time()
    if now - float(st.session_state.get("user_seen", 0.0)) > SESSION_IDLE_S:
        auth.audit("expired", user.name, _client())
        st.session_state.clear()
        st.session_state["signed_out_idle"] = True
        return None
    st.session_state["user_seen"] = now
    return user


FOCUS_CSS = (
    "<style>"
    ":focus-visible{outline:3px solid #0b5394 !important;outline-offset:2px !important}"
    "[data-baseweb=input]:focus-within,[data-baseweb=textarea]:focus-within,[data-baseweb=select]:focus-within,"
    "[data-baseweb=base-input]:focus-within{outline:3px solid #0b5394;outline-offset:1px}"
    "</style>"
)


def focus_styles() -> None:
    """A visible focus ring on everything the keyboard reaches (WCAG 2.4.7); our own CSS, no user text."""
    st.html(FOCUS_CSS)


def login_view() -> None:
    """The sign-in form (or why nothing is served). Shows nothing else."""
    focus_styles()
    accounts = _accounts()
    if auth.access_mode(st.get_option("server.address"), accounts) == "refuse":
        st.error(
            "This server listens beyond this computer but no staff accounts exist, so no data is served. "
            "Add an account with: python -m core users add NAME --role analyst, then reload."
        )
        return
    st.title("Alphabet Soup Screening")
    if st.session_state.pop("signed_out_idle", False):
        st.info("You were signed out after a period of inactivity. Sign in again.")
    with st.form("login", clear_on_submit=False):
        name = st.text_input("User name", key="login_name", autocomplete="username")
        password = st.text_input(
            "Password", type="password", key="login_password", autocomplete="current-password"
        )
        submitted = st.form_submit_button("Sign in")
    if submitted:
        try:
            result = auth.sign_in(name, password, accounts, client=_client())
        except StorageError as err:  # the lockout record is damaged: nobody is let in on a guess
            st.error(safe_text(str(err)))
            return
        if result.user is None:
            st.error(result.message)
        else:
            st.session_state.clear()
            st.session_state["user"] = result.user
            st.session_state["user_seen"] = time.time()
            st.rerun()
    st.caption("A page reload asks you to sign in again; sessions also end after inactivity.")


def show_login_only() -> None:
    """Serve the sign-in form as the app's only page, then stop.

    A page script runs on its own (Streamlit's multipage folder mode) until ``st.navigation`` has
    run once in the process: declaring the navigation here switches that mode off and replaces its
    list of page links with the sign-in page alone."""
    pages = [st.Page(login_view, title="Sign in", icon=":material/login:", url_path="signin", default=True)]
    # every page's address answers with the sign-in form too (no "page not found" over it)
    pages += [st.Page(login_view, title="Sign in", url_path=name) for name in PAGE_NAMES]
    st.navigation(pages, position="hidden").run()
    st.stop()


def page_setup(permission: str) -> User:
    """Gate + role check + sidebar; the first call of every page script."""
    user = signed_in_user()
    if user is None:
        show_login_only()
    if not user.can(permission):
        st.error(f"Your role ({user.role}) cannot {permission}. Ask an analyst account for access.")
        st.stop()
    sidebar(user)
    return user


def current_user() -> User:
    """The signed-in user (only valid after ``page_setup``)."""
    user = signed_in_user()
    if user is None:
        st.stop()
    return user


# -- models ---------------------------------------------------------------------------------
def models_dir() -> Path:
    return config.models_dir()


def _stamp(root: Path) -> tuple:
    """Changes whenever a version is added or removed or the live version moves."""
    if not root.is_dir():
        return ()
    parts = [(p.name, p.stat().st_mtime_ns) for p in sorted(root.glob("*/*")) if p.is_dir()]
    reg = root / registry.REGISTRY
    return (tuple(parts), reg.stat().st_mtime_ns if reg.exists() else None)


@st.cache_data(max_entries=8, show_spinner=False)
def _versions(models: str, stamp: tuple) -> tuple[dict[str, ModelCard], dict[str, str], str | None]:
    cards, errors = registry.list_versions(Path(models))
    try:
        live = registry.live_version(Path(models))
    except BundleError as err:
        errors["registry"] = str(err)
        live = None
    return cards, errors, live


def versions() -> tuple[dict[str, ModelCard], dict[str, str], str | None]:
    """Every version's card, the reasons some cannot load, and the live version (fresh at once)."""
    root = models_dir()
    return _versions(str(root), _stamp(root))


def current_version(user: User | None = None) -> str | None:
    """The version this session scores with: the live one, or (analysts) the one chosen in the sidebar."""
    cards, _, live = versions()
    user = user or current_user()
    chosen = st.session_state.get("model_version")
    if user.can("compare") and chosen in cards:
        return chosen
    return live if live in cards else None


@st.cache_resource(show_spinner="Loading model…", max_entries=16)
def _load(models: str, version: str) -> registry.Bundle:
    # a version is immutable, so its id is the cache key; never mutate the bundle
    return registry.load_bundle(Path(models), version)


def get_bundle(version: str) -> registry.Bundle:
    return _load(str(models_dir()), version)


@st.cache_resource(show_spinner="Preparing explanations…", max_entries=16)
def _explainer(models: str, version: str):
    from core.explain import FieldExplainer

    return FieldExplainer(_load(models, version))


def get_explainer(version: str):
    return _explainer(str(models_dir()), version)


@st.cache_resource(show_spinner=False)
def warm_up() -> object:
    """Once per server, in a background thread: load and verify the live model, its explainer and the
    serving code, so the first upload does not wait for them (they are shared caches); and start the
    thread that returns the memory of ended sessions."""
    import threading

    def work() -> None:
        import contextlib

        with contextlib.suppress(Exception):  # a damaged model is reported by the page that needs it
            live = registry.live_version(models_dir())
            if live:
                import core

                core.import_serving_code()  # done already when served by serve.py
                get_explainer(live)
            from core.batch import freeze_long_lived

            # code, the live model and what the first page run imported (Streamlit's elements, the
            # pages): out of every later collection. That first run's own objects are frozen too; it
            # holds no upload (an upload needs a second run), so what stays is small.
            freeze_long_lived()

    thread = threading.Thread(target=work, name="warm-up", daemon=True)
    thread.start()
    from core.batch import start_memory_janitor

    start_memory_janitor()  # what ended sessions held goes back to the system within seconds
    return thread


def model_page(title: str, permission: str) -> tuple[User, str]:
    """Head of pages that need a model: gate, title, the version in use."""
    user = page_setup(permission)
    st.title(title)
    version = current_version(user)
    if not version:
        st.warning("No live model yet. An analyst trains one on the Train page or with python -m core train.")
        st.stop()
    return user, version


def version_label(card: ModelCard, live: str | None) -> str:
    """Plain text (select options): version, live or not, accuracy, data."""
    acc = card.test_accuracy
    state = "LIVE" if card.version == live else "not live"
    data = "synthetic" if card.synthetic else "real data"
    return (
        f"{card.version} · {state} · acc {acc:.1%} · {data}"
        if acc is not None
        else f"{card.version} · {state}"
    )


def sidebar(user: User) -> None:
    focus_styles()
    cards, errors, live = versions()
    with st.sidebar:
        st.markdown(f"**{safe_text(user.name)}** · {user.role}")
        if user.name != "local" and st.button("Log out", key="logout"):
            auth.audit("logout", user.name, _client())
            st.session_state.clear()
            st.rerun()
        if live in cards:
            card = cards[live]
            st.markdown("**Live model**")
            st.caption(safe_text(f"{card.version}. {card.summary()}"))
            if card.synthetic:
                st.warning("Demo model: trained on synthetic data, not on a real funding history.")
        elif cards:
            st.warning("No live model: an analyst must promote one on the Models page.")
        else:
            st.info("No trained models yet: an analyst uses the Train page or python -m core train.")
        if user.can("compare") and cards:
            options = list(cards)
            chosen = st.session_state.get("model_version")
            default = chosen if chosen in cards else (live if live in cards else options[0])
            picked = st.selectbox(
                "Score and explain with (analysts)",
                options,
                index=options.index(default),
                format_func=lambda v: version_label(cards[v], live),
                key="sidebar_version",
            )
            st.session_state["model_version"] = picked
            if picked != live:
                st.warning("Not the live model: batches recorded now say so.")
        for where, message in errors.items():
            st.error(safe_text(f"{where}: {message}"))


# -- messages and downloads -------------------------------------------------------------------------
@contextmanager
def friendly_errors() -> Iterator[None]:
    """Show user errors as one short message; log anything else, never show a traceback."""
    try:
        yield
    except ScreeningError as err:
        st.error(safe_text(str(err)))
    except Exception:  # last line of defence; st.stop()/st.rerun() are BaseExceptions and pass through
        log.error("unexpected error: %s", traceback.format_exc())
        st.error("Something went wrong while doing that. Try again; if it keeps happening, tell an analyst.")


def forget_upload(upload: object) -> bool:
    """Let go of the server's copy of an uploaded file (Streamlit keeps every upload's bytes for the
    session's life otherwise). Streamlit 1.67 has no public call for this: it is the one its own
    upload endpoint makes when someone removes the file in the browser. The widget then reads as
    empty, so call it only once the page keeps what it needs and will draw the uploader under a new
    key. True when the copy was found and dropped."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    manager = getattr(ctx, "uploaded_file_mgr", None)
    file_id = getattr(upload, "file_id", None)
    if manager is None or file_id is None or not hasattr(manager, "remove_file"):
        return False
    if not manager.get_files(ctx.session_id, [file_id]):
        return False
    manager.remove_file(ctx.session_id, file_id)
    return True


def download_name(prefix: str, source_name: str, suffix: str = "csv") -> str:
    """``scored_<name>.csv``: the upload's stem (one extension), safe characters only."""
    stem = Path(str(source_name)).name
    stem = re.sub(r"\.(csv|txt|tsv)$", "", stem, flags=re.IGNORECASE)
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")[:60] or "batch"
    return f"{prefix}_{stem}.{suffix}"


def html_download(
    label: str, data: Callable[[], bytes], file_name: str, key: str, where: object = st
) -> None:
    """A self-contained HTML file, made only when someone downloads it."""
    where.download_button(label, data, file_name=file_name, mime="text/html", key=key, on_click="ignore")


def csv_download(
    label: str, data: bytes | Callable[[], bytes], file_name: str, key: str, where: object = st
) -> None:
    """A CSV download button (``where``: a column or st itself). ``data`` may be a function: the file is
    then made only when someone downloads it, not held in memory on every run."""
    where.download_button(label, data, file_name=file_name, mime="text/csv", key=key, on_click="ignore")


# -- monitoring panels (Score and History) ----------------------------------------------------------
STATUS_BOX = {"ok": "success", "warn": "warning", "fail": "error"}


def data_check_panel(check: object | None, key: str) -> None:
    """A batch's data checks: one sentence in words (with its status word), then the table per field
    (status as a word, the values never seen in training named, as plain text)."""
    from core.monitoring import N_TESTS, STATUS_WORDS

    st.subheader("Data checks against the training data")
    if check is None:
        st.info("No reference profile for this model version: data checks are not available.")
        return
    getattr(st, STATUS_BOX[check.status])(safe_text(check.summary()))
    table = check.table()
    # green / amber / red per field, always with the word
    table["status"] = table["status"].map({"OK": "🟢 OK", "Warning": "🟠 Warning", "Fail": "🔴 Fail"})
    st.dataframe(
        table,
        hide_index=True,
        key=key,
        column_config={
            "meaning": st.column_config.TextColumn(width="large"),
            "never_seen_in_training": st.column_config.TextColumn("never seen in training (rows)"),
        },
    )
    st.caption(
        f"{STATUS_WORDS['fail']}: the difference is significant after correcting for the {N_TESTS} tests "
        "(p under 0.01 / tests) and large (PSI at least 0.10); the model's chances fail on PSI 0.25 alone. "
        f"{STATUS_WORDS['warn']}: significant but small, or 1% or more of rows hold values never seen in "
        "training. Reference: " + safe_text(check.reference_basis) + "."
    )


def estimate_panel(est: object, check: object | None) -> None:
    """Accuracy expected before outcomes exist, next to the decision."""
    from core.monitoring import ASSUMPTION, FAIL

    e1, e2, e3 = st.columns(3)
    e1.metric(
        "Expected accuracy",
        f"{est.accuracy:.1%}",
        help=f"90% interval {est.accuracy_low:.1%} to {est.accuracy_high:.1%}",
    )
    e2.metric("90% interval", f"{est.accuracy_low:.1%} – {est.accuracy_high:.1%}")
    e3.metric(
        "Expected to succeed among recommended",
        "–" if est.expected_precision is None else f"{est.expected_precision:.1%}",
    )
    st.caption(safe_text(est.sentence() + " " + ASSUMPTION))
    if check is not None and check.status == FAIL:
        st.warning("Data checks failed for this batch: treat this estimate as unreliable.")


# -- groups and weak spots -------------------------------------------------------------------------
GROUPS_NOTE = (
    "A ratio under 0.8 (the four-fifths rule) says the decision selects that group less often than the "
    "most-selected one; it does not say why, and it is not proof of unfairness: groups can differ in their "
    "applications. Small groups are noisy: read the 95% intervals. Groups smaller than the minimum size "
    "are shown but never flagged."
)


def group_panel(report: object, key: str, spots: list | None = None) -> None:
    """Group rates of a decision: the flags in words, one field's chart with its summary, every group's
    table; weak spots (labelled data) as a chart and table."""
    from core import plots
    from core.groups import spots_table

    table = report.table()
    if report.sentences:
        st.markdown("**Flags (four-fifths rule):**")
        for sentence in report.sentences:
            st.markdown("- " + safe_text(sentence))
    else:
        st.markdown(
            "No group of at least the minimum size is selected at under four-fifths of the highest rate."
        )
    fields = list(dict.fromkeys(table["field"]))
    chosen = st.selectbox("Field to chart", fields, key=f"{key}_field")
    chart(
        plots.group_rates_figure(table, chosen),
        key=f"{key}_chart",
        summary=plots.group_rates_summary(table, chosen),
    )
    st.dataframe(table, hide_index=True, key=f"{key}_table")
    st.caption(GROUPS_NOTE)
    if spots is not None:
        st.markdown("**Weak spots: where the decision is wrong most** (slices of at least the minimum size)")
        if not spots:
            st.markdown("No slice's error rate stands clearly above the overall rate.")
            return
        frame = spots_table(spots)
        for spot in spots[:3]:
            st.markdown("- " + safe_text(spot.sentence()))
        chart(plots.weak_spots_figure(frame), key=f"{key}_spots_chart")
        st.dataframe(frame, hide_index=True, key=f"{key}_spots_table")


def cohort_picker(key: str, label: str = "Cohort") -> tuple[str | None, dict | None]:
    """A saved cohort to filter by (None: every row)."""
    from core.groups import describe_rule, list_cohorts

    try:
        cohorts = list_cohorts()
    except ScreeningError as err:
        st.error(safe_text(str(err)))
        cohorts = {}
    if not cohorts:
        return None, None
    options = ["(all rows)", *cohorts]
    name = st.selectbox(
        label,
        options,
        key=key,
        format_func=lambda n: n if n == "(all rows)" else f"{n}: {describe_rule(cohorts[n])}",
    )
    if name == "(all rows)":
        return None, None
    return name, cohorts[name]


def section(label: str, key: str, expanded: bool = False, where: object = st) -> object:
    """A collapsible section whose body runs only while it is open: opening it reruns the page, so a
    closed section costs neither server time nor browser work. Use ``with section(...) as box:`` and
    draw the body under ``if box.open:``."""
    return where.expander(label, expanded=expanded, key=key, on_change="rerun")


def chart(fig: object, key: str, summary: str | None = None, where: object = st) -> None:
    """A figure with its title, a one-sentence summary in text and a "Show as table" view of the same
    numbers (nobody needs to see the chart to read it)."""
    from core import plots

    where.plotly_chart(fig, key=key)
    where.caption(safe_text(summary or plots.figure_summary(fig)))
    with section("Show as table", key=f"{key}_table_open", where=where) as box:
        if box.open:
            st.dataframe(plots.figure_table(fig), hide_index=True, key=f"{key}_table_view")
