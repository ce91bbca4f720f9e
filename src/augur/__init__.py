"""Augur: risk-managed decisions on noisy sequential data.

The core library. It imports no kopf, BentoML or Ray at module level; the adapters
(``bentos/``, ``tuning/``, ``operators/``, ``feature_repo/`` and ``augur.cli``) do.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
