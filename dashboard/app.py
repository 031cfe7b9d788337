"""The dashboard: `make dashboard` (streamlit run dashboard/app.py on 127.0.0.1:8501).

One page at a time, picked in the sidebar; each lives in its own module. They read only
through the API (dashboard/client.py) and the files under reports/ (dashboard/reports.py),
and say things in words from dashboard/text.py, so the pages stay thin."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run` puts dashboard/ on the path, not the repo
    sys.path.insert(0, str(ROOT))

from dashboard import board_page, client, flight_page, health_page  # noqa: E402

# title -> the function that draws it
PAGES = {
    "Flight": flight_page.page,
    "Departures board": board_page.page,
    "Model health": health_page.page,
}


def main() -> None:
    st.set_page_config(page_title="Flight delays", layout="wide")
    page = st.sidebar.radio("Page", list(PAGES), key="page")
    st.sidebar.caption(f"API: {client.api_url()}")
    PAGES[page]()


main()
