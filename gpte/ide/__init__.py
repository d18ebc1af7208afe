"""IDE backends over :class:`gpte.code.CodeSearch`: a language server (``gpte ide serve``) and a JSON-over-HTTP front
(``gpte ide http``), both thin layers over one thread-safe :class:`WorkspaceService`.

>>> from gpte.ide import WorkspaceService
>>> service = WorkspaceService("path/to/repo")     # doctest: +SKIP
>>> service.start(); service.wait_idle(600)         # doctest: +SKIP
>>> service.search("parse a config file", k=5).hits[0].path   # doctest: +SKIP

The language server needs pygls (``pip install 'gpte[ide]'``); the service and the HTTP front need only gpte[code].
"""

from __future__ import annotations

from gpte.ide.service import OutsideWorkspaceError, SearchResult, WorkspaceService

__all__ = ["WorkspaceService", "SearchResult", "OutsideWorkspaceError"]
