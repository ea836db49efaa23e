"""veil: confidential multi-stakeholder AI inference.

See README.md for the walkthrough and DESIGN.md (in the project's shared folder) for the architecture.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
