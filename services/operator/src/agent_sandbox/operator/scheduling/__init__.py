"""Per-pool claim scheduling: ready queue, reservations, request queue and the optimistic claim write."""
