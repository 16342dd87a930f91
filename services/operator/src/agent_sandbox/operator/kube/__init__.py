"""Thin Kubernetes I/O: a raw-JSON client over kubernetes_asyncio and a watch-fed informer cache."""
