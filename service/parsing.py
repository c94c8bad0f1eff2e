"""Request parsing for ``POST /pose``: the image bytes (multipart field ``file`` or a raw image body) and
the caller's boxes. Box values are checked by ``models.geometry.validate_bboxes`` only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from core.errors import (
    ClientDisconnectedError,
    ImageDecodeError,
    InvalidParameterError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from inference.imageio import SUPPORTED_CONTENT_TYPES
from models.geometry import validate_bboxes

#: Extra bytes allowed on top of the image limit for multipart framing and form fields.
MULTIPART_SLACK = 64 * 1024
BOXES_HELP = "boxes must be JSON like [[x1, y1, x2, y2], ...] (original-image pixels)"


@dataclass
class Upload:
    """What a ``POST /pose`` body carries: the encoded image and, for multipart, a ``boxes`` form field."""

    data: bytes
    form_bboxes: str | None = None


def parse_bboxes(text: str | None, max_boxes: int) -> np.ndarray | None:
    """Caller boxes from JSON text: ``[[x1, y1, x2, y2], ...]`` or one ``[x1, y1, x2, y2]``.

    Args:
        text: the ``boxes`` query parameter or form field; None or "" for none (run the detector).
        max_boxes: most boxes accepted.

    Returns:
        float32 [N, 4] xyxy in original-image pixels, or None.

    Raises:
        InvalidParameterError: not JSON, too deeply nested, more than ``max_boxes``, or rejected by
            ``models.geometry.validate_bboxes`` (the message names the problem).
    """
    if text is None or text == "":
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or an integer beyond Python's 4300-digit conversion limit
        raise InvalidParameterError(f"{BOXES_HELP}: {exc}") from exc
    except RecursionError:
        raise InvalidParameterError(f"{BOXES_HELP}: nested too deeply") from None
    try:
        bboxes = validate_bboxes(value)
    except ValueError as exc:
        raise InvalidParameterError(f"{BOXES_HELP}: {exc}") from exc
    if len(bboxes) > max_boxes:
        raise InvalidParameterError(f"{len(bboxes)} boxes given, at most {max_boxes} accepted")
    return bboxes


async def _read_limited(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_upload(request: Request, max_bytes: int) -> Upload:
    """The image bytes of a request (multipart field ``file`` or a raw image body) and any form ``boxes``.

    Raises:
        UnsupportedMediaTypeError: no or an unaccepted Content-Type.
        PayloadTooLargeError: the declared or read body exceeds ``max_bytes`` (plus multipart framing).
        InvalidParameterError: a multipart body without a ``file`` field.
        ImageDecodeError: a malformed multipart body.
        ClientDisconnectedError: the client went away before the whole body arrived (499, counted as a disconnect).
    """
    try:
        return await _read_upload(request, max_bytes)
    except ClientDisconnect:
        raise ClientDisconnectedError("the client disconnected during the upload") from None


def check_declared_size(request: Request, max_bytes: int) -> None:
    """Refuse a body whose ``Content-Length`` exceeds ``max_bytes`` (plus multipart framing) before reading any of it.

    Raises:
        PayloadTooLargeError: it does.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + MULTIPART_SLACK:
        raise PayloadTooLargeError(f"request body of {declared} bytes exceeds the limit of {max_bytes} bytes")


async def _read_upload(request: Request, max_bytes: int) -> Upload:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    check_declared_size(request, max_bytes)
    if ctype == "multipart/form-data":
        # parsed in memory (the file part never spools to a temporary file: the service holds the bytes anyway,
        # bounded by the upload limit, and a full temp dir must not turn uploads into 500s)
        parser = MultiPartParser(request.headers, request.stream(), max_files=1, max_fields=16)
        parser.spool_max_size = max_bytes + MULTIPART_SLACK + 1
        try:
            form = await parser.parse()
        except MultiPartException as exc:
            raise ImageDecodeError(f"malformed multipart body: {exc.message}") from exc
        except StarletteHTTPException as exc:
            raise ImageDecodeError(f"malformed multipart body: {exc.detail}") from exc
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidParameterError("multipart body has no file field named 'file'")
        data = await upload.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise PayloadTooLargeError(f"uploaded file exceeds the limit of {max_bytes} bytes")
        boxes = form.get("boxes")
        return Upload(data, boxes if isinstance(boxes, str) else None)
    if ctype in SUPPORTED_CONTENT_TYPES:
        return Upload(await _read_limited(request, max_bytes))
    if not ctype:
        raise UnsupportedMediaTypeError(
            "missing Content-Type: send multipart/form-data (field 'file') or an image/* body"
        )
    raise UnsupportedMediaTypeError(
        f"Content-Type {ctype} is not accepted: send multipart/form-data (field 'file') or one of "
        f"{sorted(SUPPORTED_CONTENT_TYPES)}"
    )
