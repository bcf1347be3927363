"""Result files: written atomically and sealed with a checksum; an altered one is not trusted."""

import json
import os
from pathlib import Path

from . import provenance


def load_result(path: Path) -> dict | None:
    """A result file, or None when it is missing, unreadable or altered since it was written."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    checksum = record.pop("checksum", None)
    return record if checksum == provenance.json_digest(record) else None


def write_json(path: Path, record: dict, *, checksum: bool = False) -> None:
    """Write atomically (temp file, then rename), optionally sealing with a checksum."""
    if checksum:
        record = {**record, "checksum": provenance.json_digest(record)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")
    os.replace(tmp, path)
