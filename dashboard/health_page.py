"""The Model health page: the champion and the challenger the API serves (GET /model), the
monitoring loop's months against the frozen model, the drift history with its Evidently
reports, the alerts Prometheus has firing, and the champion's reliability diagram, slice
table and model card (files under reports/). Each missing input is one sentence naming the
command that makes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd  # streamlit's own dependency
import streamlit as st

from dashboard import alerts, client, reports, text

REPORT_HEIGHT_PX = 700  # an Evidently report shown in the page scrolls inside this


def page() -> None:
    st.header("Model health")
    folder = reports.reports_dir()
    served = client.model()
    models_section(served)
    loop_section(folder)
    drift_section(folder)
    alerts_section()
    names = [served.body["name"]] if served.ok else [p.stem for p in reports.model_cards(folder)]
    calibration_section(folder, names)
    cards_section(folder)


def models_section(served: client.Result) -> None:
    st.subheader("The champion the API serves")
    if not served.ok:
        st.error(served.message)
        return
    m = served.body
    st.metric("Version", f"{m.get('name')} v{m.get('version')}")
    lineage_table(m)
    if m.get("metrics"):
        st.table([{"metric": k, "value": round(v, 4)} for k, v in m["metrics"].items()])
    st.subheader("The challenger, scored in the champion's shadow")
    challenger = m.get("challenger")
    if not challenger:
        st.info(
            "No challenger: the registry's @challenger is not set. The monthly cycle "
            "(`make cycle`) registers one."
        )
        return
    st.metric("Challenger version", f"{challenger.get('name')} v{challenger.get('version')}")
    lineage_table(challenger)


def lineage_table(m: dict[str, Any]) -> None:
    lineage = {
        "alias": m.get("alias"),
        "source": m.get("source"),
        "run id": m.get("run_id"),
        "git commit": m.get("git_commit"),
        "data manifest sha256": m.get("data_manifest_sha256"),
        "loaded at": m.get("loaded_at"),
    }
    st.table([{"": k, "value": str(v) if v is not None else "–"} for k, v in lineage.items()])


def loop_section(folder: Path) -> None:
    st.subheader("The monitoring loop: monthly ROC AUC and ECE against the frozen model")
    decisions = reports.loop_decisions(folder)
    if decisions is None:
        st.info(f"Not yet: no {folder / 'loop' / 'decisions.json'}. Run `make loop`.")
        return
    rows = pd.DataFrame(reports.loop_rows(decisions)).set_index("month")
    st.line_chart(rows[["AUC loop", "AUC frozen"]], y_label="ROC AUC")
    if reports.loop_has_ece(decisions):
        st.line_chart(rows[["ECE loop", "ECE frozen"]], y_label="ECE (lower is better)")
    else:
        st.info(
            f"No ECE by month in {folder / 'loop' / 'decisions.json'}: it was written before "
            "the loop recorded it. Run `make loop` again."
        )
    st.dataframe(rows.reset_index(), hide_index=True)
    pooled = decisions.get("pooled_oct_dec") or {}
    if pooled:
        st.write(
            f"Pooled October–December: loop {pooled['loop']:.4f}, frozen "
            f"{pooled['frozen']:.4f} ({text.auc_gap(pooled['loop'], pooled['frozen'])})."
        )


def drift_section(folder: Path) -> None:
    st.subheader("Drift history")
    history = reports.drift_history(folder)
    if not history:
        st.info(
            f"Not yet: no {folder / 'drift' / 'history.csv'}. Run `make drift` "
            "(or `make smoke`, which ends with one)."
        )
        return
    found = reports.drift_reports(folder)
    latest: set[str] = set()  # a batch's report is its latest check's: earlier rows show –
    for row in reversed(history):  # history.csv is in the order the checks ran
        batch = row.get("batch")
        row["report"] = str(found[batch]) if batch in found and batch not in latest else "–"
        latest.add(batch)
    st.dataframe(history, hide_index=True)
    if not found:
        return
    # Streamlit cannot link to a local file: the report is downloaded, or shown in the page
    # (our own drift stage's HTML, so embedding it with its scripts is safe).
    batch = st.selectbox("Evidently report of the batch", list(found), key="drift_batch")
    st.download_button(
        f"Download the {batch} report (HTML)",
        found[batch].read_bytes(),
        file_name=f"drift-{batch}.html",
        mime="text/html",
        key="drift_download",
    )
    if st.toggle("Show it here", key="drift_show"):
        st.iframe(found[batch], height=REPORT_HEIGHT_PX)


def alerts_section() -> None:
    st.subheader("Alerts firing now")
    found = alerts.fetch()
    if found.problem:
        st.warning(found.problem)
        return
    if found.firing:
        st.dataframe(found.firing, hide_index=True)
    else:
        st.success(f"No alert is firing at {alerts.prometheus_url()}.")
    if found.pending:
        st.caption(f"{found.pending} more pending: their condition holds, not yet for long enough.")


def calibration_section(folder: Path, names: list[str]) -> None:
    for name in names:
        st.subheader(f"Calibration and slices of {name}, on its test months")
        reliability_diagram(folder, name)
        slices = reports.card_data("slices", name, folder)
        if slices is None:
            not_beside_the_card(reports.card_data_path("slices", name, folder))
        else:
            st.dataframe(reports.slice_rows(slices), hide_index=True)


def reliability_diagram(folder: Path, name: str) -> None:
    """Mean prediction against observed delay rate, one point a bin, beside the diagonal."""
    bins = reports.card_data("reliability", name, folder)
    if bins is None or not (rows := reports.reliability_rows(bins)):
        not_beside_the_card(reports.card_data_path("reliability", name, folder))
        return
    points = pd.DataFrame(rows)
    diagram = points.set_index("mean prediction")[["observed delay rate"]]
    diagram["perfectly calibrated"] = diagram.index
    st.line_chart(diagram, x_label="mean prediction", y_label="observed delay rate")
    st.caption(f"Reliability diagram, ECE {bins['ece']:.4f}: one point a bin.")
    st.dataframe(points, hide_index=True)


def not_beside_the_card(path: Path) -> None:
    st.info(
        f"Not yet: no {path}. Run `make smoke` or `make pipeline` (src.register writes it with "
        "the card)."
    )


def cards_section(folder: Path) -> None:
    st.subheader("Model card")
    cards = reports.model_cards(folder)
    if not cards:
        st.info(
            f"Not yet: no card in {folder / 'model_card'}. Run `make smoke` or `make pipeline`."
        )
    for card in cards:
        with st.expander(str(card)):
            st.markdown(card.read_text())
