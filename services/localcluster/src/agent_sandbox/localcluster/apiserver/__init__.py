"""Embedded Kubernetes-compatible API server.

Modules: ``server`` (HTTP shell), ``store`` (state, versions, events, watch
fan-out), ``strategy`` (per-resource write rules), ``resources`` (built-in and
CRD-defined types), ``schema`` (CRD structural schemas), ``patches``,
``selectors``, ``tables``, ``discovery``, ``openapi``, ``watchers``, ``watchstream``, ``tls``,
``persistence`` (SQLite), ``faults`` (fault injection), ``kubeconfig``, ``podlogs``
(where pod logs come from).
Run it through :class:`agent_sandbox.localcluster.app.LocalCluster` or the
``agent-sandbox localcluster`` command.
"""
