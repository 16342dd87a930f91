"""Pool autoscaler decisions (reactive and proactive scale-up, stabilised scale-down)."""
