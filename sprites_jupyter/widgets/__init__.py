"""Widgets built from stock ipywidgets, each with a plain-text fallback.

They render what they are given (events, models, callables) and never talk HTTP.
"""
