"""The control-plane gRPC between the operator and extproc (``protos/ctrlplane/v1``).

A distribution of its own so that both sides share one copy of the generated stubs
without the operator depending on the data plane (and its image carrying Envoy).
"""
