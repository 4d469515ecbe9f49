"""podline's version, importable from every layer (run manifests record it)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
