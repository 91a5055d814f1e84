"""Gradio web demo on runtime/ (no torch): `gan-demo` serves it."""
