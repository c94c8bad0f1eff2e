"""The inputs of ``pose-predict`` (:mod:`inference.predict`): the command line's files, folders, globs, Parquet /
JSON lists and stream URLs expanded into :class:`Source` objects, each file once, each with a unique output stem.

Nothing is opened here but folders and list files: images and videos are decoded when their turn comes, URLs are not
checked.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

#: File suffixes read as images (decoded by ``inference.imageio``) and as videos (``inference.video``, PyAV).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp"}
)
#: A source file with one of these suffixes is a list of paths (Parquet: a ``source`` or ``path`` column; JSON: a list).
LIST_SUFFIXES = frozenset({".parquet", ".json"})
#: URL schemes opened as video streams.
URL_SCHEMES = ("http", "https", "rtsp", "rtsps")


@dataclass(frozen=True)
class Source:
    """One input: an image or video file, or a stream URL.

    Attributes:
        kind: ``"image"`` or ``"video"`` (URLs are videos).
        location: the file path or the URL, as given to the reader.
        stem: the name of its outputs in ``--out`` (made unique among the sources).
    """

    kind: str
    location: str
    stem: str

    @property
    def name(self) -> str:
        """How messages name it."""
        return self.location


def _is_url(text: str) -> bool:
    return urlparse(text).scheme.lower() in URL_SCHEMES and "://" in text


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_SUFFIXES else "video" if suffix in VIDEO_SUFFIXES else None


def _media_files(paths) -> list[Path]:
    return sorted((p for p in paths if p.is_file() and _kind(p) is not None), key=lambda p: str(p))


def expand_sources(args: list[str]) -> tuple[list[Source], list[str]]:
    """The inputs named by the command line, in order (a folder's and a glob's files sorted by name), each file once.

    Args:
        args: file paths, folders (their image and video files, not recursive), glob patterns (``*``, ``?``, ``[``)
            and ``http(s)://`` / ``rtsp://`` URLs.

    Returns:
        (sources, problems): one message per argument that does not exist, matches no image or video, or is a file
        of another type. URLs are not checked here (they are opened when their turn comes).
    """
    found: list[tuple[str, str, str]] = []  # kind, location, stem
    problems: list[str] = []
    for arg in args:
        if _is_url(arg):
            found.append(("video", arg, Path(urlparse(arg).path).stem or "stream"))
            continue
        path = Path(arg).expanduser()
        if path.is_dir():
            files = _media_files(path.iterdir())
            if not files:
                problems.append(f"{arg}: folder has no image or video files")
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            files, bad = _listed_files(path)
            problems += bad
        elif path.is_file():
            files = [path] if _kind(path) is not None else []
            if not files:
                problems.append(
                    f"{arg}: not an image ({', '.join(sorted(IMAGE_SUFFIXES))}) or a video "
                    f"({', '.join(sorted(VIDEO_SUFFIXES))}) by its name"
                )
        elif glob.has_magic(arg):
            files = _media_files(Path(p) for p in glob.glob(str(path)))
            if not files:
                problems.append(f"{arg}: matches no image or video file")
        else:
            problems.append(f"{arg}: no such file or folder")
            files = []
        found += [(_kind(f), str(f), f.stem) for f in files]
    sources, seen, stems = [], set(), set()
    for kind, location, stem in found:
        key = location if kind == "video" and _is_url(location) else str(Path(location).resolve())
        if key in seen:
            continue
        seen.add(key)
        unique, n = stem, 1
        while (kind, unique) in stems:
            unique, n = f"{stem}_{n}", n + 1
        stems.add((kind, unique))
        sources.append(Source(kind, location, unique))
    return sources, problems


def _listed_files(path: Path) -> tuple[list[Path], list[str]]:
    """The image and video files of a Parquet / JSON list (:func:`inference.ray_runner.read_source_list`), and a
    message per entry that is not one."""
    from inference.ray_runner import read_source_list

    try:
        listed = read_source_list(path)
    except (OSError, ValueError) as exc:
        return [], [f"{path}: {exc}"]
    files, problems = [], []
    for entry in listed:
        p = Path(entry)
        if not p.is_file():
            problems.append(f"{path}: {entry}: no such file")
        elif _kind(p) is None:
            problems.append(f"{path}: {entry}: not an image or a video by its name")
        else:
            files.append(p)
    if not listed:
        problems.append(f"{path}: lists no files")
    return files, problems
