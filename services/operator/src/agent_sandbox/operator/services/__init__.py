"""Service layer the HTTP APIs call: sandboxes and pools, pydantic models at the edge, typed errors."""
