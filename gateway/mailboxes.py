"""The mailboxes the poller reads: the first from the environment, more from config/mailboxes.yaml.

Environment (one mailbox, named ``default``): IMAP_HOST, IMAP_PORT, IMAP_USER, IMAP_PASSWORD,
IMAP_FOLDER (INBOX), IMAP_TLS (none | starttls | tls; default tls), IMAP_TLS_CA_FILE (a
private CA's certificates, else the system's), IMAP_PROCESSED (flag | move),
IMAP_PROCESSED_FOLDER, IMAP_PROCESSED_FLAG, IMAP_IDLE (default yes), IMAP_POLL_SECONDS. In config/mailboxes.yaml, each mailbox
names the environment variable that holds its password (``password_env``): no secret is
ever written in config/. Errors carry file, line and field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from router.yamlfile import ConfigError, Problem, load

FILE = "mailboxes.yaml"
DEFAULT_FLAG = "$Gateway311"


class MailboxConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9_-]{1,40}$")
    host: str = Field(min_length=1)
    port: int | None = Field(None, ge=1, le=65535)
    tls: Literal["none", "starttls", "tls"] = "tls"
    user: str = Field(min_length=1)
    password_env: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    folder: str = "INBOX"
    processed: Literal["flag", "move"] = "flag"
    processed_flag: str = Field(DEFAULT_FLAG, pattern=r"^\$?[A-Za-z0-9_]{1,60}$")
    processed_folder: str = "Traités"
    idle: bool = True  # use IDLE when the server offers it
    poll_seconds: float = Field(60.0, gt=0)
    timeout_seconds: float = Field(30.0, gt=0, le=600)  # socket timeout: a silent server is dropped
    tls_ca_file: str | None = None  # a private CA's certificates; default: the system's


@dataclass(frozen=True)
class Mailbox:
    """A mailbox ready to connect to (password resolved from the environment)."""

    name: str
    host: str
    port: int
    tls: str
    user: str
    password: str
    folder: str = "INBOX"
    processed: str = "flag"
    processed_flag: str = DEFAULT_FLAG
    processed_folder: str = "Traités"
    idle: bool = True
    poll_seconds: float = 60.0
    timeout_seconds: float = 30.0
    tls_ca_file: str | None = None

    def __repr__(self) -> str:  # no password, no address in logs
        return f"<Mailbox {self.name} {self.host}:{self.port}/{self.folder}>"


def load_mailboxes(settings) -> list[Mailbox]:
    """Every configured mailbox. Raises ConfigError (file, line, field) for a bad entry."""
    found = []
    if settings.get("IMAP_HOST"):
        found.append(_from_environment(settings))
    path = Path(str(settings["GATEWAY_CONFIG_DIR"])) / FILE
    if path.exists():
        found += _from_file(path, settings)
    names = [m.name for m in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError([Problem(str(path), None, "name", f"mailbox names must be unique: {duplicates}")])
    return found


def _from_environment(settings) -> Mailbox:
    problems = []
    tls = str(settings.get("IMAP_TLS") or "tls").lower()
    if tls not in ("none", "starttls", "tls"):
        problems.append(Problem("environment", None, "IMAP_TLS", "must be none, starttls or tls"))
    processed = str(settings.get("IMAP_PROCESSED") or "flag").lower()
    if processed not in ("flag", "move"):
        problems.append(Problem("environment", None, "IMAP_PROCESSED", "must be flag or move"))
    if not settings.get("IMAP_USER"):
        problems.append(Problem("environment", None, "IMAP_USER", "is required with IMAP_HOST"))
    try:
        port = int(settings.get("IMAP_PORT") or default_port(tls))
    except ValueError:
        problems.append(Problem("environment", None, "IMAP_PORT", "must be a number"))
        port = 0
    if problems:
        raise ConfigError(problems)
    return Mailbox(
        name="default", host=str(settings["IMAP_HOST"]), port=port, tls=tls,
        user=str(settings["IMAP_USER"]), password=str(settings.get("IMAP_PASSWORD") or ""),
        folder=str(settings.get("IMAP_FOLDER") or "INBOX"), processed=processed,
        processed_flag=str(settings.get("IMAP_PROCESSED_FLAG") or DEFAULT_FLAG),
        processed_folder=str(settings.get("IMAP_PROCESSED_FOLDER") or "Traités"),
        poll_seconds=float(settings.get("IMAP_POLL_SECONDS") or 60.0),
        timeout_seconds=float(settings.get("IMAP_TIMEOUT_SECONDS") or 30.0),
        idle=str(settings.get("IMAP_IDLE") or "yes").strip().lower() not in ("0", "no", "false", "off"),
        tls_ca_file=settings.get("IMAP_TLS_CA_FILE") or None,
    )


def _from_file(path: Path, settings) -> list[Mailbox]:
    document = load(path)
    data = document.data or {}
    entries = data.get("mailboxes") if isinstance(data, dict) else None
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ConfigError([document.problem(("mailboxes",), "must be a list")])
    found, problems = [], []
    for i, entry in enumerate(entries):
        try:
            config = MailboxConfig.model_validate(entry)
        except ValidationError as exc:
            problems += [document.problem(("mailboxes", i, *e["loc"]), e["msg"]) for e in exc.errors()]
            continue
        password = settings.get(config.password_env)
        if password is None:
            problems.append(document.problem(("mailboxes", i, "password_env"),
                                             f"environment variable {config.password_env} is not set"))
            continue
        values = config.model_dump(exclude={"password_env", "port"})
        found.append(Mailbox(port=config.port or default_port(config.tls), password=str(password), **values))
    if problems:
        raise ConfigError(problems)
    return found


def default_port(tls: str) -> int:
    return 993 if tls == "tls" else 143
