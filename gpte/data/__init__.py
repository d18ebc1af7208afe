"""Real corpora available offline (each described in data_cards/)."""

from gpte.data.stdlib import StdlibFunction, stdlib_functions

__all__ = ["StdlibFunction", "stdlib_functions"]
