"""The Model health page: the champion the API serves (GET /model), the monitoring loop's
months against the frozen model, the drift history and the model cards (files under
reports/)."""

from __future__ import annotations

import streamlit as st

from dashboard import client, reports, text


def page() -> None:
    st.header("Model health")
    champion = client.model()
    st.subheader("The champion the API serves")
    if champion.ok:
        m = champion.body
        st.metric("Version", f"{m.get('name')} v{m.get('version')}")
        lineage = {
            "alias": m.get("alias"),
            "source": m.get("source"),
            "run id": m.get("run_id"),
            "git commit": m.get("git_commit"),
            "data manifest sha256": m.get("data_manifest_sha256"),
            "loaded at": m.get("loaded_at"),
        }
        st.table([{"": k, "value": str(v) if v is not None else "–"} for k, v in lineage.items()])
        if m.get("metrics"):
            st.table([{"metric": k, "value": round(v, 4)} for k, v in m["metrics"].items()])
    else:
        st.error(champion.message)

    folder = reports.reports_dir()
    st.subheader("The monitoring loop: monthly ROC AUC against the frozen model")
    decisions = reports.loop_decisions(folder)
    if decisions is None:
        st.info(f"Not yet: no {folder / 'loop' / 'decisions.json'}. Run `make loop`.")
    else:
        rows = reports.loop_rows(decisions)
        import pandas as pd  # streamlit's own dependency

        st.line_chart(pd.DataFrame(rows).set_index("month")[["AUC loop", "AUC frozen"]])
        st.dataframe(rows, hide_index=True)
        pooled = decisions.get("pooled_oct_dec") or {}
        if pooled:
            st.write(
                f"Pooled October–December: loop {pooled['loop']:.4f}, frozen "
                f"{pooled['frozen']:.4f} ({text.auc_gap(pooled['loop'], pooled['frozen'])})."
            )

    st.subheader("Drift history")
    history = reports.drift_history(folder)
    if not history:
        st.info(
            f"Not yet: no {folder / 'drift' / 'history.csv'}. Run `make drift` "
            "(or `make smoke`, which ends with one)."
        )
    else:
        st.dataframe(history, hide_index=True)

    st.subheader("Model card")
    cards = reports.model_cards(folder)
    if not cards:
        st.info(
            f"Not yet: no card in {folder / 'model_card'}. Run `make smoke` or `make pipeline`."
        )
    for card in cards:
        with st.expander(str(card)):
            st.markdown(card.read_text())
