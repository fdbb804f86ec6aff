"""A Dash outside the tested minor versions fails loudly at import."""

from __future__ import annotations

import pytest

from quartdash._dash_version import check_dash_version


def test_tested_dash_is_accepted() -> None:
    check_dash_version("4.4.1")
    check_dash_version("4.4.9")


@pytest.mark.parametrize("version", ["4.5.0", "5.0.0", "4.3.2"])
def test_untested_dash_is_refused(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUARTDASH_ALLOW_UNTESTED_DASH", raising=False)
    with pytest.raises(ImportError, match=f"not dash {version}"):
        check_dash_version(version)


def test_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUARTDASH_ALLOW_UNTESTED_DASH", "1")
    check_dash_version("5.0.0")
