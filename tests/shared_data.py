"""Where the tests and benchmarks find the data kept outside the repository (CamVid, the parity fixture).

One variable decides it for every data test and benchmark: `RNS_SHARED`, the folder that holds `data/camvid`
and `parity`. Unset, it is `../shared` beside the repository root (the development layout). The data is
never copied into the repository or the package. Only the standard library is imported, so a benchmark can
load this module without pulling in pytest.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VARIABLE = "RNS_SHARED"
SHARED = Path(os.environ.get(VARIABLE) or REPO.parent / "shared").expanduser()
CAMVID = SHARED / "data" / "camvid"
PARITY = SHARED / "parity"


def camvid_missing(part: str = "test/images") -> str | None:
    """Why a CamVid test cannot run here (one line naming the path and the variable), or None."""
    if (CAMVID / part).is_dir():
        return None
    return f"CamVid not found at {CAMVID / part} (set {VARIABLE}=DIR, the folder holding data/camvid)"
