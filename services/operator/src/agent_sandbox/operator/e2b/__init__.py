"""E2B-compatible control-plane API (``:8090``, root paths) so the unmodified E2B SDK can drive sandboxes.

Wire details come from ``e2b-contract.md``: 201 on create only once the sandbox is usable, errors as
``{code, message}``, ``Should-Retry: false`` on permanent 5xx, v1 and v2 routes, 501 naming the
alternative for operations we do not offer.
"""
