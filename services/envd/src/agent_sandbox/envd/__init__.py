"""envd: the in-sandbox daemon speaking E2B's envd protocol.

It serves the Connect-RPC ``process.Process`` and ``filesystem.Filesystem``
services plus the plain HTTP routes (``/files``, ``/health``, ``/init``,
``/envs``, ``/metrics``) that the unmodified E2B SDK uses, and ships as a
relocatable bundle so any image runs it without a rebuild.
"""

# The envd protocol version whose features this daemon really serves (e2b-contract §13):
# stdin on/off (0.3.0), default user (0.4.0), CloseStdin (0.5.2), octet-stream and gzip
# uploads (0.5.7). File metadata/xattrs (0.6.2) are not served, so we stay below it.
ENVD_VERSION = "0.5.7"
