"""HTTP handlers of the public API: thin; they validate, call the domain code and encode."""
