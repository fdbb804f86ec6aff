"""The Dash versions quartdash is tested with: a newer Dash fails loudly.

quartdash drives Dash's callback internals (reached through
:mod:`quartdash.hosting.dash_internals`), which change between minor
releases without notice. Rather than misbehave subtly, quartdash refuses to
import with a Dash outside the tested range; QUARTDASH_ALLOW_UNTESTED_DASH=1
overrides (at your own risk). Checked before any of Dash's private modules
is imported.
"""

from __future__ import annotations

import os

__all__ = ["TESTED_DASH", "check_dash_version"]

TESTED_DASH = ((4, 4),)  # (major, minor) pairs


def check_dash_version(version: str) -> None:
    major_minor = tuple(int(part) for part in version.split(".")[:2])
    if major_minor in TESTED_DASH or os.environ.get("QUARTDASH_ALLOW_UNTESTED_DASH") == "1":
        return
    tested = ", ".join(f"{a}.{b}.x" for a, b in TESTED_DASH)
    raise ImportError(
        f"quartdash is tested with dash {tested}, not dash {version}: it relies on Dash's "
        "callback internals. Install a tested dash (pip install 'dash>=4.4,<4.5') or set "
        "QUARTDASH_ALLOW_UNTESTED_DASH=1 to try anyway."
    )
