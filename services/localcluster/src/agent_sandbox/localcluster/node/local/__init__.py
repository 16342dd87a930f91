"""The ``local`` node's runtime: Pods as bubblewrap sandboxes on this machine (see :mod:`.runtime`)."""
