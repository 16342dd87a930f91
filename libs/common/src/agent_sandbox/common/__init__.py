"""Shared library of Agent Sandbox: the pieces every service agrees on.

Sandbox ids, the label/annotation vocabulary, settings loading, logging setup,
API-key hashing and the error model live here so that the operator, extproc,
wsproxy, envd and the embedded control plane never disagree on them.
"""
