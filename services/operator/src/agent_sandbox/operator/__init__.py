"""Agent Sandbox operator.

Keeps pools of pre-warmed Pods (SandboxPool controller), hands one to a caller
with a single optimistic write (per-pool claim scheduler), swaps container
images in place, recycles pods back to idle, enforces timeouts and scales
pools. Decision logic lives in plain modules without I/O; the Kubernetes I/O
shell around it talks raw JSON through ``kubernetes_asyncio``.
"""
