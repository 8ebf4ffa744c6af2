"""Losses of method=slcgan (pure functions of network outputs)."""
