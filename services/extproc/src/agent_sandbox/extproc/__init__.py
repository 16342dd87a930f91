"""Agent Sandbox data plane: the Envoy ExternalProcessor that routes sandbox traffic.

Envoy asks this service, once per request, where the request goes; the answer
comes from in-memory state (a Pod watch plus routes pushed by the operator), so
no request waits on the Kubernetes API.
"""
