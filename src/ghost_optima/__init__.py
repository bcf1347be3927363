"""Ghost Optima: the tested code behind the companion book to Glukhov (arXiv 2411.07008)."""

__version__ = "0.1.0"
