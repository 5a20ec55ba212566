"""Operating the gateway: how each mailbox is doing (health), the ``status`` snapshot and its
checks, and the Prometheus metrics."""
