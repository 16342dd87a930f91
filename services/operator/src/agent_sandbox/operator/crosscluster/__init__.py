"""Cross-cluster API forwarding (behaviour.md §20): the cluster directory, its ConfigMap watch, and
the proxy that sends requests naming a foreign cluster to that cluster's API gateway."""
