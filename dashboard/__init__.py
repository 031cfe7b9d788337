"""The Streamlit dashboard (`make dashboard`): a flight's delay probability and the model's
health, read only through the API (FD_API_URL) and the files under reports/ (docs/dashboard.md)."""
