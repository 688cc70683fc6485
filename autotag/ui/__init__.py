"""Streamlit pieces that several pages share: the one part of autotag that imports streamlit."""
