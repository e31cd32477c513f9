"""Write docs/config.md, the config reference, from the config dataclasses' help metadata."""

from __future__ import annotations

from pathlib import Path

from eedi_utils.config import config_reference

if __name__ == "__main__":
    target = Path(__file__).resolve().parents[1] / "docs" / "config.md"
    target.write_text(config_reference(), encoding="utf-8")
    print(f"wrote {target}")
