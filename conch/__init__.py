"""conch: an OCI container runtime in Python, a drop-in peer of runc."""

__version__ = "0.1.0"
SPEC_VERSION = "1.2.0"
