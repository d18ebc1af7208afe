"""The Gradio demo (``gpte demo``): image, code and text search in a browser, over folders you name.

The service layer (:mod:`gpte.demo.images`, :mod:`gpte.demo.codesearch`, :mod:`gpte.demo.texts`) takes plain inputs
and returns plain results, so it runs and is tested without a browser or Gradio; :mod:`gpte.demo.app` lays the
components out and turns :class:`DemoError` into Gradio's error pop-ups. Only the public gpte API is used.

>>> from gpte.demo import DemoConfig                       # doctest: +SKIP
>>> from gpte.demo.app import build_app, launch             # doctest: +SKIP
>>> launch(build_app(DemoConfig(image_folders=["photos"])), port=7860)   # doctest: +SKIP
"""

from __future__ import annotations

from gpte.demo.config import DemoConfig, DemoError

__all__ = ["DemoConfig", "DemoError"]
