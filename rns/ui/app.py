"""The FastAPI app: the page, its static files, and the JSON API over a `UiSession`.

Every failure a client can cause comes back as JSON `{"error": "..."}` with a 4xx status (400 bad input,
404 unknown photo or file, 409 memory conflict, 413 too large, 422 malformed form); an unexpected bug is
logged with its traceback on the server's stderr and answered with a 500 JSON line, never a traceback.
Routes are plain (sync) functions, so FastAPI runs them in worker threads and the page stays responsive
while a photo is being segmented.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from rns.errors import InputError, RnsError
from rns.io.palette import class_colour, hex_colour, named_colours
from rns.ui.body_limit import BodyLimitMiddleware
from rns.ui.config import folder_listing, printable_name, resolve_folder_image
from rns.ui.encoding import decode_mask, labels_png_base64, parse_classes, regions_png_base64
from rns.ui.host_guard import HostGuard
from rns.ui.photos import ImageTooLargeError, OpenPhoto, PhotoNotOpenError
from rns.ui.session import UiSession
from support_memory.errors import MemoryStoreError

# Multipart framing and the small text fields, on top of the files themselves.
_FORM_OVERHEAD_BYTES = 256 * 1024


def _too_large(size: int, limit: int) -> str:
    return (f"upload of at least {size:,} bytes is over the limit of {limit:,} bytes per file: downscale or "
            "compress the image (or start rns ui with a larger --max-upload-mb)")


class UploadTooLargeError(InputError):
    """An upload over the byte limit (answered with 413)."""


def create_app(session: UiSession, guard: HostGuard) -> FastAPI:
    """The web app serving `session`; `rns.ui.server` runs it with uvicorn.

    `guard` knows the address the server listens on: requests naming another Host (DNS rebinding) or
    coming from another origin are refused with 403 before anything else runs (see `rns.ui.host_guard`).
    """
    app = FastAPI(title="rns ui", docs_url=None, redoc_url=None, openapi_url=None)
    limit = session.config.max_upload_bytes
    static = resources.files("rns.ui") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    _install_error_handlers(app)

    app.add_middleware(BodyLimitMiddleware, max_bytes=2 * limit + _FORM_OVERHEAD_BYTES,
                       message=lambda size: _too_large(size, limit))  # fmt: skip

    @app.middleware("http")  # added last, so it runs first: nothing of a foreign request is read
    async def refuse_other_sites(request: Request, call_next: Any) -> Response:
        """Any web page the user visits may send a form POST to 127.0.0.1 (no preflight for multipart),
        so a request that a browser marks as coming from another origin may not change anything."""
        problem = guard.refusal(request.method, request.headers)
        if problem:
            return _error(403, problem)
        return await call_next(request)

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse((static / "index.html").read_text(encoding="utf-8"))

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        backbone = session.backbone
        return {
            "model": backbone.spec.model,
            "weights": backbone.weights_label,
            "memory": session.memory_summary(),
            "images": session.config.images_dir is not None,
            "max_upload_bytes": limit,
            "max_pixels": session.config.max_pixels,
            "palette": [hex_colour(class_colour(i)) for i in range(256)],
        }

    @app.post("/api/open")
    def open_photo(image: Annotated[UploadFile, File()], regions: Annotated[bool, Form()] = False
                   ) -> dict[str, Any]:  # fmt: skip
        with session.photo_slots:
            photo = _photo(session, image, None, limit)
            answer = _photo_fields(photo)
            if regions:
                answer["regions"] = regions_png_base64(session.correction_regions(photo))
            return answer

    @app.post("/api/segment")
    def segment(
        image: Annotated[UploadFile | None, File()] = None,
        photo: Annotated[str | None, Form()] = None,
        classes: Annotated[str, Form()] = "",
        regions: Annotated[bool, Form()] = False,
    ) -> dict[str, Any]:
        # A bounded number of photos decoded, segmented and encoded at once: a 40 MP segmentation
        # holds about 1 GB until its answer is encoded, so the encoding stays inside the slot too.
        with session.photo_slots:
            opened = _photo(session, image, photo, limit)
            result = session.segment(opened, parse_classes(classes))
            seg = result.segmentation
            answer = {
                **_photo_fields(opened),
                "classes": seg.class_names,
                "colours": [hex_colour(colour) for colour in named_colours(seg.class_names)],
                "fractions": seg.fractions(),
                "labels": labels_png_base64(seg.labels),
                "seconds": round(result.seconds, 4),
                "computed_features": result.computed_features,
                "mode": seg.info.get("mode"),
                "memory_prototypes": seg.info.get("memory_prototypes"),
            }
            del result, seg
            if regions:
                answer["regions"] = regions_png_base64(session.correction_regions(opened))
            return answer

    @app.post("/api/teach")
    def teach(
        mask: Annotated[UploadFile, File()],
        classes: Annotated[str, Form()],
        image: Annotated[UploadFile | None, File()] = None,
        photo: Annotated[str | None, Form()] = None,
    ) -> dict[str, Any]:
        with session.photo_slots:
            opened = _photo(session, image, photo, limit)
            ids = decode_mask(_read_upload(mask, limit, "mask"), session.config.max_pixels)
            outcome = session.teach(opened, ids, classes.split(","))
        return {
            "photo": opened.photo_id,
            "status": outcome.status,
            "source_id": outcome.source_id,
            "classes": outcome.classes,
            "prototypes": outcome.prototypes,
            "seconds": round(outcome.seconds, 4),
            "computed_features": outcome.computed_features,
            "memory": outcome.memory,
        }

    @app.post("/api/colours")
    def colours(classes: Annotated[str, Form()] = "") -> dict[str, Any]:
        """The colours of a class list (by name, as in every output), for classes the page adds itself."""
        names = [" ".join(part.split()) for part in classes.split(",") if part.strip()]
        return {"classes": names, "colours": [hex_colour(colour) for colour in named_colours(names)]}

    @app.post("/api/undo")
    def undo() -> dict[str, Any]:
        return session.undo()

    @app.get("/api/memory")
    def memory() -> dict[str, Any]:
        return session.memory_summary()

    @app.post("/api/memory/remove")
    def remove_class(name: Annotated[str, Form()]) -> dict[str, Any]:
        return session.remove_class(name)

    @app.get("/api/images")
    def images() -> dict[str, Any]:
        folder = session.config.images_dir
        if folder is None:
            raise _NoFolderError("no --images folder was given to rns ui")
        images, skipped = folder_listing(folder)
        return {"folder": printable_name(folder.name), "images": images, "skipped": skipped}

    @app.get("/api/images/{name}")
    def folder_image(name: str) -> FileResponse:
        folder = session.config.images_dir
        if folder is None:
            raise _NoFolderError("no --images folder was given to rns ui")
        try:
            path = resolve_folder_image(folder, name)
        except InputError as error:
            raise _NoFolderError(str(error)) from None
        return FileResponse(path, filename=path.name)

    return app


class _NoFolderError(InputError):
    """A folder image that does not exist (or may not be read): 404."""


def _photo(session: UiSession, image: UploadFile | None, photo_id: str | None, limit: int) -> OpenPhoto:
    """The photo a request names: an uploaded `image`, or the id of one uploaded before."""
    if image is not None and (image.filename or image.size):
        return session.open_photo(_read_upload(image, limit, "image"), image.filename or "upload")
    if photo_id:
        return session.photos.get(photo_id.strip())
    raise InputError("no photo: send the image as the multipart file field 'image'")


def _read_upload(upload: UploadFile, limit: int, what: str) -> bytes:
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise UploadTooLargeError(
            f"{what} {upload.filename or ''} is over the upload limit of {limit:,} bytes: downscale or "
            "compress it (or start rns ui with a larger --max-upload-mb)"
        )
    if not data:
        raise InputError(f"{what} {upload.filename or ''} is empty (0 bytes): send a complete image file")
    return data


def _photo_fields(photo: OpenPhoto) -> dict[str, Any]:
    return {"photo": photo.photo_id, "name": photo.name, "width": photo.image.width,
            "height": photo.image.height}  # fmt: skip


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RnsError)
    async def user_error(_request: Request, error: RnsError) -> JSONResponse:
        if isinstance(error, UploadTooLargeError | ImageTooLargeError):
            return _error(413, str(error))
        if isinstance(error, PhotoNotOpenError | _NoFolderError):
            return _error(404, str(error))
        return _error(400, str(error))

    @app.exception_handler(MemoryStoreError)
    async def memory_error(_request: Request, error: MemoryStoreError) -> JSONResponse:
        return _error(409, str(error))

    @app.exception_handler(RequestValidationError)
    async def bad_form(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item.get('loc', ())[1:]) or 'request'}: {item.get('msg')}"
            for item in error.errors()
        )
        return _error(422, f"malformed request ({problems}); see the README's JSON API section")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail))

    @app.exception_handler(Exception)
    async def bug(_request: Request, error: Exception) -> JSONResponse:
        # Starlette re-raises after answering, so the traceback still reaches the server's log.
        return _error(500, f"internal error ({type(error).__name__}); the server log has the details")
