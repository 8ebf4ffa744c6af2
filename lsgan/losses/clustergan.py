"""Losses of method=clustergan (pure functions of network outputs)."""
