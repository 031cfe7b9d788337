"""The dashboard: `make dashboard` (streamlit run dashboard/app.py on 127.0.0.1:8501).

Two pages, picked in the sidebar: Flight (GET /flights for a flight by its number) and
Model health (GET /model, then reports/loop/decisions.json, reports/drift/history.csv and
the model cards). It reads only through the API and the files under reports/; what it
says comes from dashboard/text.py and dashboard/client.py, so the pages stay thin."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run` puts dashboard/ on the path, not the repo
    sys.path.insert(0, str(ROOT))

from dashboard import client, reports, text  # noqa: E402

PAGES = ("Flight", "Model health")
ORIGINS = ("any", "EWR", "JFK", "LGA")


def look_up(origin: str | None = None) -> None:
    """Ask the API for the flight in the inputs (from `origin` when given); the answer is
    kept for the reruns that follow."""
    s = st.session_state
    if origin is not None:
        s["origin"] = origin
    chosen = None if s["origin"] == "any" else s["origin"]
    s["result"] = client.flight(s["carrier"], int(s["number"]), s["day"], chosen)


def flight_page() -> None:
    st.header("A flight by its number")
    st.caption(f"Asks the API at {client.api_url()}: GET /flights/{{carrier}}/{{number}}/{{date}}")
    left, middle, right, last = st.columns(4)
    left.text_input("Carrier", value="UA", max_chars=2, key="carrier")
    middle.number_input("Flight number", min_value=1, max_value=9999, value=236, key="number")
    right.date_input(
        "Date (New York)",
        value=date(2013, 8, 15),
        min_value=date(2000, 1, 1),
        max_value=date(2099, 12, 31),
        key="day",
    )
    last.selectbox("Origin", ORIGINS, key="origin")
    st.button("Look up", type="primary", on_click=look_up, key="look_up")
    result = st.session_state.get("result")
    if result is not None:
        show_flight(result)


def show_flight(result: client.Result) -> None:
    if result.kind == "two_origins":
        st.warning(result.message)
        cols = st.columns(len(result.body["origins"]))
        for col, origin in zip(cols, result.body["origins"], strict=True):
            col.button(f"From {origin}", on_click=look_up, args=(origin,), key=f"from_{origin}")
        return
    if result.kind == "departed":
        st.info(result.message)
        return
    if not result.ok:
        st.error(result.message)
        return
    answer = result.body
    st.subheader(text.flight_title(answer))
    st.metric("Delay probability (15+ min late)", text.percent(answer["delay_probability"]))
    st.markdown(f"**{text.decision(answer)}**")
    st.write(
        f"Features as of {text.moment(answer.get('as_of'))}, "
        f"{text.lead_in_words(answer['lead_hours'])}; "
        f"model {answer.get('model_name')} v{answer.get('model_version')}."
    )
    ages = answer.get("feature_age_s") or {}
    st.markdown("\n".join(f"- {text.age_in_words(v, s)}" for v, s in ages.items()))
    why = text.reasons(answer)
    if why:
        st.markdown("**Why** (largest contributions to the score first):")
        st.markdown("\n".join(f"- {r}" for r in why))
    else:
        st.caption("No explanation in the API's answer.")


def health_page() -> None:
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


def main() -> None:
    st.set_page_config(page_title="Flight delays", layout="wide")
    page = st.sidebar.radio("Page", PAGES, key="page")
    st.sidebar.caption(f"API: {client.api_url()}")
    if page == "Flight":
        flight_page()
    else:
        health_page()


main()
