"""The Flight page: a flight by its carrier, number and New York date (GET /flights), its
delay probability, the decision, the feature ages and the reasons the API gives; then a
what-if: the record it was scored on, with the hour or the weather changed, scored again
(POST /predict)."""

from __future__ import annotations

from datetime import date

import streamlit as st

from dashboard import client, text, what_if

ORIGINS = ("any", "EWR", "JFK", "LGA")


def look_up(origin: str | None = None) -> None:
    """Ask the API for the flight in the inputs (from `origin` when given); the answer is
    kept for the reruns that follow."""
    s = st.session_state
    if origin is not None:
        s["origin"] = origin
    chosen = None if s["origin"] == "any" else s["origin"]
    s["result"] = client.flight(s["carrier"], int(s["number"]), s["day"], chosen, features=True)
    for key in [*map(control_key, what_if.CONTROLS), "what_if"]:  # the new record's values
        s.pop(key, None)


def page() -> None:
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
    show_reasons(answer, "**Why** (largest contributions to the score first):")
    if answer.get("features"):
        show_what_if(answer)


def control_key(field: str) -> str:
    return f"what_if_{field}"


def show_reasons(answer: dict, heading: str = "") -> None:
    """The API answer's reasons in words, as a list under `heading`; a caption when it has
    none (the board page shows a selected flight's the same way)."""
    why = text.reasons(answer)
    if not why:
        st.caption("No explanation in the API's answer.")
        return
    if heading:
        st.markdown(heading)
    st.markdown("\n".join(f"- {r}" for r in why))


def show_what_if(answer: dict) -> None:
    """The controls, prefilled from the record scored; a button scores the changed record."""
    st.subheader("What if")
    st.caption(
        "Change the hour or the weather and score the record again (POST /predict); "
        "everything else stays as the store had it."
    )
    record, s = answer["features"], st.session_state
    for col, (field, (label, step)) in zip(
        st.columns(len(what_if.CONTROLS)), what_if.CONTROLS.items(), strict=True
    ):
        s.setdefault(control_key(field), what_if.initial(record, field))
        if field == what_if.HOUR:
            col.slider(label, 0, 23, key=control_key(field))
        else:
            col.number_input(label, value=None, step=step, key=control_key(field))
    st.button("Score the change", on_click=score_what_if, args=(record,), key="what_if_score")
    if "what_if" in s:
        show_what_if_result(answer["delay_probability"], *s["what_if"])


def score_what_if(record: dict) -> None:
    """POST /predict the record with the controls' values; kept with what was changed."""
    s = st.session_state
    values = {field: s[control_key(field)] for field in what_if.CONTROLS}
    result = client.predict(what_if.changed(record, values))
    s["what_if"] = (result, what_if.changes(record, values))


def show_what_if_result(original: float, result: client.Result, changed: list[str]) -> None:
    if not result.ok:
        st.error(result.message)
        return
    p = result.body["delay_probability"]
    before, after = st.columns(2)
    before.metric("As looked up", text.percent(original))
    after.metric(
        "What if", text.percent(p), what_if.points(p, original), delta_color="inverse"
    )  # more risk in red
    st.caption("Changed: " + "; ".join(changed) if changed else "Nothing changed.")
