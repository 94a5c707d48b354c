"""Streamlit dashboard: reads through warehouse, writes only review actions, never fits models."""
