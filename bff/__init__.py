"""Product-details backend-for-frontend: one call, three services, one deadline."""

__version__ = "0.1.0"
