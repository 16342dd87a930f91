"""Reconcilers: the SandboxPool controller and the idle-timeout loop, plus their pure decision helpers."""
