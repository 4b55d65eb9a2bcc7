"""Herald: a multi-tenant real-time notification platform."""

__version__ = "0.1.0"
