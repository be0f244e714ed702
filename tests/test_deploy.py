"""deploy/spotme-hub.service: systemd reads it without a complaint, and scores it "OK" or
better for exposure (`systemd-analyze security`, offline: no service is started)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "spotme-hub.service"

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="needs systemd-analyze (Debian package systemd; scripts/test installs it)",
)


def unit_here(tmp_path: Path) -> Path:
    """The unit with its ExecStart pointing at this checkout's `spotme-hub` (verify checks the
    program exists)."""
    hub = Path(sys.executable).with_name("spotme-hub")
    text = UNIT.read_text().replace("/opt/spotme-hub/bin/spotme-hub", str(hub))
    assert str(hub) in text
    path = tmp_path / "spotme-hub.service"
    path.write_text(text)
    return path


def test_the_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    path = unit_here(tmp_path)
    verified = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True,
                              text=True, timeout=60)  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert "spotme-hub.service" not in verified.stderr, verified.stderr  # no warning about it
    scored = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(path)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    found = re.search(r"Overall exposure level for spotme-hub\.service: ([\d.]+) (\w+)",
                      scored.stdout)  # fmt: skip
    assert found, scored.stdout + scored.stderr
    exposure, level = float(found.group(1)), found.group(2)
    assert level in ("SAFE", "OK") and exposure < 4, scored.stdout[-2000:]
    text = UNIT.read_text()
    for must in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                 "PrivateTmp=yes", "CapabilityBoundingSet=\n", "RestrictAddressFamilies=",
                 "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID", "StateDirectory=",
                 "ConfigurationDirectory=", "EnvironmentFile="):  # fmt: skip
        assert must in text, must
