"""Browser terminals (behaviour.md §23): a WebSocket bridged to a PTY that envd runs in the sandbox."""
