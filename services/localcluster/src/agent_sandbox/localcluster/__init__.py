"""Embedded Kubernetes-compatible control plane (``apiserver``) and node agents (``node``).

Single-machine runs and the test suites need a Kubernetes API without a cluster;
this package provides one that the real clients (kubernetes_asyncio, kubectl) accept.
"""
