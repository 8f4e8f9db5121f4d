"""`rns ui`: a local web page (and JSON API) where a person looks, corrects and teaches.

The package is split by job: `config` (limits and settings), `photos` (the open photos and their cached
dense features and regions), `session` (segment / teach / undo / memory over the Python API), `encoding`
(PNGs and form fields in and out), `app` (the FastAPI routes) and `server` (uvicorn). Only `app` and
`server` import the web stack, which comes with the optional extra `ui` (`pip install "rns[ui]"`).
"""

from __future__ import annotations

UI_EXTRA_HINT = (
    'rns ui needs the optional web extra: pip install "rns[ui]" (fastapi, uvicorn, python-multipart)'
)
