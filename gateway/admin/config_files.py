"""Editing config/ from the console: validate an edited file against a copy of the folder,
apply it (written atomically, reloaded, recorded with who and when), roll it back.

Nothing here knows about HTTP. The running rules are swapped only when the whole folder,
with the edit, loads without a single problem.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from sqlalchemy import select

from router import ConfigError, Problem, RuleBook, load_rulebook
from router.loader import FILES, PLACES_FILE

from ..models import ConfigVersion

EDITABLE = FILES + (PLACES_FILE,)  # the YAML files; districts.geojson is edited with a map tool, not here
OPTIONAL = (PLACES_FILE,)  # a city without named places starts from an empty file


class ConfigEditError(ValueError):
    """Nothing to roll back to, or an unknown file."""


def read(directory: Path, name: str) -> str:
    _check_name(name)
    path = Path(directory) / name
    if name in OPTIONAL and not path.exists():
        return ""
    return path.read_text(encoding="utf-8")


def validate(directory: Path, name: str, text: str, sink_types: set[str] | None) -> tuple[RuleBook | None, list[Problem]]:
    """Loads the whole folder as it would be with ``text`` in ``name``: (rules, []) when
    valid, (None, problems) otherwise, each problem naming the file and the line."""
    _check_name(name)
    with tempfile.TemporaryDirectory(prefix="gateway-config-") as tmp:
        copy = Path(tmp) / "config"
        shutil.copytree(directory, copy)
        (copy / name).write_text(text, encoding="utf-8")
        try:
            book = load_rulebook(copy, sink_types)
        except ConfigError as exc:
            return None, [Problem(Path(p.file).name, p.line, p.field, p.message) for p in exc.problems]
    return book, []


def apply(runtime, session, name: str, text: str, author: str, action: str = "apply") -> list[Problem]:
    """Validates, writes and reloads; returns the problems (and changes nothing) if invalid."""
    holder = runtime.rules
    text = text.replace("\r\n", "\n")
    _book, problems = validate(holder.directory, name, text, holder.sink_types)
    if problems:
        return problems
    previous = read(holder.directory, name)
    _write_atomically(holder.directory / name, text)
    if not holder.reload():
        _write_atomically(holder.directory / name, previous)  # another file broke meanwhile
        holder.reload()
        error = holder.last_error
        return list(error.problems) if error else [Problem(name, None, "", "not reloaded")]
    session.add(ConfigVersion(filename=name, previous=previous, content=text, action=action, author=author))
    return []


def rollback(runtime, session, name: str, author: str) -> list[Problem]:
    """Puts back the file as it was before the last change made from the console.

    Raises ConfigEditError when no change was recorded for ``name``."""
    last = session.scalars(select(ConfigVersion).where(ConfigVersion.filename == name)
                           .order_by(ConfigVersion.id.desc()).limit(1)).first()
    if last is None:
        raise ConfigEditError(name)
    return apply(runtime, session, name, last.previous, author, action="rollback")


def history(session, name: str, limit: int = 10) -> list[ConfigVersion]:
    return list(session.scalars(select(ConfigVersion).where(ConfigVersion.filename == name)
                                .order_by(ConfigVersion.id.desc()).limit(limit)))


def _write_atomically(path: Path, text: str) -> None:
    """Readers (other processes reloading) see the old file or the new one, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _check_name(name: str) -> None:
    if name not in EDITABLE:
        raise ConfigEditError(name)
