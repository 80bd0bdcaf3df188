"""CLI verbs, one module per area. Each module exposes `register(app)`; heavy imports stay inside the verbs."""
