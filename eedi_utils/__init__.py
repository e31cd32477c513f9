"""eedi-kit: retrieval, training and submission utilities for the Eedi misconception competition."""

__version__ = "0.2.0"
