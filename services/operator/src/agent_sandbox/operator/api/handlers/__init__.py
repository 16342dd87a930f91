"""Native API handlers, one module per resource; each exports ``HANDLERS: operation id → handler``."""
