"""The Gradio page: three tabs (images, code, texts) over the services of :mod:`gpte.demo`, and :func:`launch`.

Every event has a stable ``api_name``, so ``gradio_client`` can call it::

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    gallery, table, status = client.predict(folder, "lit-lite0-minilm", "a red car", None, 8, api_name="/image_search")

Errors the user can fix (a folder outside the ones named at start, an upload that is not an image ...) come back as
Gradio error pop-ups naming the item and the reason. The page serves no file from disk: ``allowed_paths`` is empty,
gallery thumbnails are rendered by the image service, and code is read back inside the named workspace.
"""

from __future__ import annotations

import functools
import html
import logging
import os
from collections.abc import Callable
from typing import Any

from gpte.demo.codesearch import LANGUAGES, CodeService
from gpte.demo.config import DemoConfig, DemoError
from gpte.demo.images import ImageService
from gpte.demo.models import ModelCache, model_choices
from gpte.demo.texts import TextService
from gpte.shared.errors import GpteError

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no version check or telemetry: the demo runs offline
try:
    import gradio as gr
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError('the demo needs Gradio: pip install "gpte[demo]"') from exc

__all__ = ["build_app", "launch"]

logger = logging.getLogger(__name__)

# gpte language -> gr.Code language (None: no highlighting mode for it in Gradio's editor)
_CODE_LANGUAGES = {"python": "python", "javascript": "javascript", "typescript": "typescript", "tsx": "typescript",
                   "c": "c", "cpp": "cpp"}
_SAMPLE_TEXTS = """Return the lines of a text file.
Sort a list of numbers in place.
The cat sat on the warm windowsill all afternoon.
Parse a JSON document into a dictionary.
A quick recipe for tomato soup with basil.
Trains leave the central station every ten minutes.
Compute the SHA-256 hash of a byte string.
The river flooded the valley after a week of rain."""


def _readable(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors a user can act on into Gradio pop-ups (escaped: the modal renders HTML)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (DemoError, GpteError, OSError, ValueError) as exc:
            logger.info("%s: %s", fn.__name__, exc)
            raise gr.Error(html.escape(str(exc), quote=False), print_exception=False) from exc

    return wrapper


def _progress(progress: Any) -> Callable[[float, str], None]:
    return lambda fraction, desc: progress(fraction, desc=desc)


def _picker(kind: str, default: str, config: DemoConfig) -> Any:
    choices = model_choices(kind, config.include_test_models)  # type: ignore[arg-type]
    if default not in choices:
        raise ValueError(f"default {kind} model {default!r} is not one of {', '.join(choices)}")
    return gr.Dropdown(choices=choices, value=default, label="Model", scale=1)


def _folder_picker(folders: list[Any], flag: str) -> Any:
    names = [str(f) for f in folders]
    info = (f"one of the folders named with {flag}, or a folder inside one" if names
            else f"none: start the demo with {flag} FOLDER")
    return gr.Dropdown(choices=names, value=names[0] if names else None, allow_custom_value=True, label="Folder",
                       info=info, scale=3)


# ---------------------------------------------------------------------------------------------------- tabs
def _image_tab(config: DemoConfig, images: ImageService) -> None:
    with gr.Row():
        folder = _folder_picker(list(config.image_folders), "--images")
        model = _picker("image", config.image_model, config)
        index_button = gr.Button("Index folder", scale=1)
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(label="Describe the picture", placeholder="a red car", elem_id="image-query")
            k = gr.Slider(1, 48, value=12, step=1, label="Results")
            search_button = gr.Button("Search images", variant="primary", elem_id="image-search")
        with gr.Column(scale=2), gr.Row():
            upload = gr.File(label="...or by an image (with text: the image, edited by the text)",
                             file_types=["image"], type="filepath", height=150, elem_id="image-upload")
            preview = gr.Image(label="Query image", interactive=False, height=150, buttons=[])
    gallery = gr.Gallery(label="Results", columns=6, height="auto", object_fit="contain", interactive=False,
                         buttons=["download", "fullscreen"], elem_id="image-gallery")  # no "share" (a hub link)
    status = gr.Textbox(label="Index", interactive=False, max_lines=6, elem_id="image-status")
    table = gr.Dataframe(headers=["rank", "score", "file", "pixels", "KB", "duplicates"], interactive=False,
                         label="Scores and metadata", elem_id="image-table")

    @_readable
    def image_index(folder: str, model: str, progress: Any = gr.Progress()) -> str:  # noqa: B008
        return images.index(folder, model, _progress(progress)).message()

    @_readable
    def image_preview(upload: str | None) -> Any:
        return images.load_query_image(upload) if upload else None

    @_readable
    def image_search(folder: str, model: str, text: str, upload: str | None, k: float,
                     progress: Any = gr.Progress()) -> tuple[list[Any], list[list[Any]], str]:  # noqa: B008
        results, summary = images.search(folder, model, text, upload, int(k), _progress(progress))
        shown = [(r.thumbnail, f"{r.rank}. {r.score:.3f}  {r.id}") for r in results if r.thumbnail is not None]
        rows = [[r.rank, round(r.score, 4), r.id, f"{r.metadata.get('width', '?')}×{r.metadata.get('height', '?')}",
                 round(r.metadata.get("bytes", 0) / 1000, 1), ", ".join(r.metadata.get("duplicates", []))]
                for r in results]
        return shown, rows, summary.message()

    index_button.click(image_index, [folder, model], status, api_name="image_index")
    upload.change(image_preview, upload, preview, api_name="image_preview")
    for trigger, name in ((search_button.click, "image_search"), (text.submit, "image_search_submit")):
        trigger(image_search, [folder, model, text, upload, k], [gallery, table, status], api_name=name)


def _code_tab(config: DemoConfig, code: CodeService) -> None:
    with gr.Row():
        folder = _folder_picker(list(config.code_folders), "--code")
        model = _picker("code", config.code_model, config)
        index_button = gr.Button("Index workspace", scale=1)
    with gr.Row():
        query = gr.Textbox(label="What the code does", placeholder="parse a config file", scale=4,
                           elem_id="code-query")
        language = gr.Dropdown(choices=["any", *LANGUAGES], value="any", label="Language", scale=1)
        k = gr.Slider(1, 50, value=10, step=1, label="Results", scale=1)
    search_button = gr.Button("Search code", variant="primary", elem_id="code-search")
    status = gr.Textbox(label="Index", interactive=False, elem_id="code-status")
    table = gr.Dataframe(headers=["rank", "score", "location", "symbol", "kind", "language"], interactive=False,
                         label="Ranked definitions (select a row to see its code)", elem_id="code-table")
    snippet = gr.Code(label="Code", interactive=False, elem_id="code-snippet")
    shown = gr.State([])

    @_readable
    def code_index(folder: str, model: str, progress: Any = gr.Progress()) -> str:  # noqa: B008
        return code.index(folder, model, _progress(progress)).message()

    @_readable
    def code_search(folder: str, model: str, query: str, language: str, k: float,
                    progress: Any = gr.Progress()) -> tuple[list[list[Any]], Any, str, list[dict]]:  # noqa: B008
        results, summary = code.search(folder, model, query, int(k), None if language == "any" else language,
                                       _progress(progress))
        rows = [[r.rank, round(r.score, 4), f"{r.path}:{r.start_line}-{r.end_line}", r.symbol, r.kind, r.language]
                for r in results]
        views = [{"code": r.code, "language": r.language, "label": f"{r.location}  {r.symbol}"} for r in results]
        return rows, _code_view(views[0] if views else None), summary.message(), views

    def code_show(views: list[dict], evt: gr.SelectData) -> Any:
        row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        return _code_view(views[row] if isinstance(row, int) and 0 <= row < len(views) else None)

    index_button.click(code_index, [folder, model], status, api_name="code_index")
    for trigger, name in ((search_button.click, "code_search"), (query.submit, "code_search_submit")):
        trigger(code_search, [folder, model, query, language, k], [table, snippet, status, shown], api_name=name)
    table.select(code_show, shown, snippet, api_name="code_show")


def _code_view(view: dict | None) -> Any:
    if view is None:
        return gr.Code(value="", label="Code (no results)", language=None)
    return gr.Code(value=view["code"], language=_CODE_LANGUAGES.get(view["language"]), label=view["label"])


def _text_tab(config: DemoConfig, texts: TextService) -> None:
    model = _picker("text", config.text_model, config)
    with gr.Row():
        with gr.Column(scale=3):
            pasted = gr.Textbox(label="Texts, one per line", value=_SAMPLE_TEXTS, lines=8, max_lines=20,
                                elem_id="texts")
        with gr.Column(scale=2):
            files = gr.File(label="...and/or .txt files (one text per line)", file_count="multiple",
                            file_types=[".txt"], type="filepath")
    with gr.Row():
        query = gr.Textbox(label="Query", placeholder="read a file line by line", scale=4, elem_id="text-query")
        k = gr.Slider(1, 50, value=5, step=1, label="Results", scale=1)
    search_button = gr.Button("Search texts", variant="primary", elem_id="text-search")
    table = gr.Dataframe(headers=["rank", "score", "source", "text"], interactive=False, label="Ranked texts",
                         wrap=True, elem_id="text-table")
    gr.Markdown("### Similarity of two texts")
    with gr.Row():
        first = gr.Textbox(label="First text", value="A man is playing a guitar.")
        second = gr.Textbox(label="Second text", value="Someone plays an instrument.")
    compare_button = gr.Button("Compare")
    score = gr.Number(value=None, label="Cosine similarity", precision=4, interactive=False, elem_id="similarity")

    @_readable
    def text_search(pasted: str, files: list[str] | None, query: str, model: str, k: float) -> list[list[Any]]:
        return [[r.rank, round(r.score, 4), r.source, r.text]
                for r in texts.search(pasted, files, query, model, int(k))]

    @_readable
    def text_similarity(first: str, second: str, model: str) -> float:
        return round(texts.similarity(first, second, model), 6)

    for trigger, name in ((search_button.click, "text_search"), (query.submit, "text_search_submit")):
        trigger(text_search, [pasted, files, query, model, k], table, api_name=name)
    compare_button.click(text_similarity, [first, second, model], score, api_name="text_similarity")


# ---------------------------------------------------------------------------------------------------- app
def build_app(config: DemoConfig | None = None) -> gr.Blocks:
    """The demo page for ``config`` (folders, default models, limits); one model cache shared by all tabs."""
    config = config or DemoConfig()
    models = ModelCache(config.device, config.include_test_models)
    # thumbnails and uploads in Gradio's cache are deleted after an hour
    with gr.Blocks(title="gpte demo", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown("# gpte: search images, code and texts with embeddings\nEverything runs locally, offline.")
        with gr.Tab("Images", id="images"):
            _image_tab(config, ImageService(config, models))
        with gr.Tab("Code", id="code"):
            _code_tab(config, CodeService(config, models))
        with gr.Tab("Texts", id="texts"):
            _text_tab(config, TextService(config, models))
    app.gpte_config = config  # type: ignore[attr-defined]
    return app


def launch(app: gr.Blocks, *, host: str = "127.0.0.1", port: int | None = None, max_file_size: int | None = None,
           block: bool = True, quiet: bool = False) -> gr.Blocks:
    """Serve ``app`` on ``host:port`` (loopback by default; no share link, no file served from disk).

    ``max_file_size``: the largest upload in bytes (default: the app's ``DemoConfig.max_upload_bytes``).
    ``block=False`` returns once the server is up (tests; call ``app.close()`` after).
    """
    config: DemoConfig = getattr(app, "gpte_config", None) or DemoConfig()
    if host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("serving on %s: anyone who can reach this address can search the named folders", host)
    app.queue(default_concurrency_limit=1)
    app.launch(server_name=host, server_port=port, share=False, inbrowser=False, prevent_thread_lock=not block,
               max_file_size=max_file_size or config.max_upload_bytes, allowed_paths=[], show_error=True,
               quiet=quiet, ssr_mode=False, mcp_server=False, enable_monitoring=False, run_history=False,
               footer_links=["api", "settings"])
    return app
