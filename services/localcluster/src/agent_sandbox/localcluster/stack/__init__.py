"""``agent-sandbox up`` / ``down`` / ``status``: the whole system on one machine.

Runs the embedded control plane with a ``local`` node, the operator, extproc and a real Envoy as
supervised subprocesses, creates credentials and the default ``base`` template and pool, and
prints the exports for the E2B SDK, the native API and kubectl. See :mod:`.up`.
"""
