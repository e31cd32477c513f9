"""An append-only JSON-lines cache of LLM results, so a killed run resumes and pays once.

One line per finished item, written and flushed as soon as the item is done. A line torn by a
kill mid-write is skipped on load (and the next write starts on a fresh line), never fatal.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def cache_key(task: str, text: str, prompt_version: str, model: str, n: int) -> str:
    """Everything that changes the answer: the task, its input, the prompt, the model, the count."""
    payload = json.dumps([task, text, prompt_version, model, n], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class JsonlCache:
    """Finished results by key, backed by one append-only file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: dict[str, dict[str, Any]] = {}
        self.torn_lines = 0
        self._needs_newline = False
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        raw = self.path.read_bytes()
        self._needs_newline = bool(raw) and not raw.endswith(b"\n")
        with self.path.open(encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, start=1):
                try:
                    entry = json.loads(line)
                    self.entries[entry["key"]] = entry
                except (json.JSONDecodeError, KeyError, TypeError):
                    self.torn_lines += 1
                    logger.warning("%s line %d is torn or not an entry; skipped", self.path, number)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, entry: dict[str, Any]) -> None:
        """Record a finished item: appended and flushed before this returns."""
        entry = {**entry, "key": key}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            if self._needs_newline:  # the last line was torn: start a fresh one
                out.write("\n")
                self._needs_newline = False
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")
            out.flush()
        self.entries[key] = entry
