"""Downstream clients: one module per service on top of the shared policy in `base`."""
