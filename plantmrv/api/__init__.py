"""Verifier API (FastAPI): reductions with everything needed to re-derive them."""
