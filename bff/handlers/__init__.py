"""HTTP handlers: thin; they validate, call the domain code and encode."""
