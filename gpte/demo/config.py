"""What the demo may read and where it keeps its indexes: :class:`DemoConfig`, and the folder checks every tab uses.

The demo reads only the folders named when it was started (``gpte demo --images DIR --code DIR``) and folders inside
them; a folder typed into the page is resolved (symbolic links and ``..`` included) and refused unless it lies inside
one of those. Indexes are kept under ``cache_dir``, never written into the folders themselves.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gpte.shared.errors import GpteError

__all__ = ["DemoConfig", "DemoError", "check_folder", "default_cache_dir", "index_dir_for", "resolve_folder"]

DEFAULT_MAX_UPLOAD_BYTES = 20_000_000


class DemoError(GpteError, ValueError):
    """An input the demo cannot use; the message names the item and the reason, and is shown to the user as is."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/gpte/demo`` (``~/.cache/gpte/demo`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gpte" / "demo"


@dataclass
class DemoConfig:
    image_folders: Sequence[str | os.PathLike[str]] = ()  # folders the image tab may index (and folders inside them)
    code_folders: Sequence[str | os.PathLike[str]] = ()  # workspaces the code tab may index (and folders inside them)
    cache_dir: str | os.PathLike[str] = field(default_factory=default_cache_dir)  # indexes live here, per model+folder
    image_model: str = "lit-lite0-minilm"  # default of the image tab's model picker
    code_model: str = "code-minilm"  # default of the code tab's model picker
    text_model: str = "minilm"  # default of the text tab's model picker
    include_test_models: bool = False  # also offer the tiny random test models (tests use them for speed)
    device: str | None = None  # cpu, cuda, ... (None: gpte's default)
    follow_symlinks: bool = False  # index symbolic links leaving an image folder (Debian's clip art needs it)
    image_batch_size: int = 32  # images embedded per batch while indexing (progress is reported per batch)
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES  # largest uploaded file (query image or text file)
    max_texts: int = 20_000  # most texts the text tab embeds at once

    def __post_init__(self) -> None:
        self.image_folders = [Path(p).expanduser().resolve() for p in self.image_folders]
        self.code_folders = [Path(p).expanduser().resolve() for p in self.code_folders]
        self.cache_dir = Path(self.cache_dir).expanduser().resolve()
        if self.max_upload_bytes <= 0:
            raise ValueError(f"max_upload_bytes must be positive, not {self.max_upload_bytes}")


def check_folder(folder: Path, shown: str | None = None) -> Path:
    """``folder`` if it is an existing, listable directory; otherwise a :class:`DemoError` with the path and reason."""
    shown = shown or str(folder)
    try:
        if not folder.exists():
            raise DemoError(f"{shown}: no such folder")
        if not folder.is_dir():
            raise DemoError(f"{shown}: not a folder (it is a file)")
        with os.scandir(folder) as entries:
            next(entries, None)
    except PermissionError as exc:
        raise DemoError(f"{shown}: cannot be read (permission denied)") from exc
    except OSError as exc:
        raise DemoError(f"{shown}: cannot be read ({exc.strerror or exc})") from exc
    return folder


def resolve_folder(requested: str | os.PathLike[str] | None, roots: Sequence[Path], flag: str) -> Path:
    """The folder the user asked for, resolved, if it lies inside one of ``roots`` and can be read.

    ``flag`` names the command-line option that grants access (``--images`` or ``--code``), for the message.
    """
    text = str(requested or "").strip()
    if not roots:
        raise DemoError(f"no folders to search: start the demo with {flag} FOLDER")
    if not text:
        raise DemoError(f"no folder given: pick one of {', '.join(map(str, roots))}")
    path = Path(text).expanduser()  # a relative path is relative to the working directory, as on the command line
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symbolic link loop
        raise DemoError(f"{text}: cannot be resolved ({exc})") from exc
    if not any(resolved.is_relative_to(root) for root in roots):
        raise DemoError(f"{text}: outside the folders this demo was started with ({', '.join(map(str, roots))}); "
                        f"restart it with {flag} {text} to search it")
    return check_folder(resolved, text)


def index_dir_for(cache_dir: Path, kind: str, folder: Path, model: str) -> Path:
    """Where the index of ``folder`` built with ``model`` lives: ``cache_dir/kind/<name>-<hash>/<model>``."""
    digest = hashlib.sha256(str(folder).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", folder.name or "root")[:40]
    return cache_dir / kind / f"{safe}-{digest}" / re.sub(r"[^A-Za-z0-9._-]+", "_", model)
