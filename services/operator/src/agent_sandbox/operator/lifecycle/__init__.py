"""Sandbox life after the claim: in-place updates, release/recycle, history, timeouts, post-start hooks."""
