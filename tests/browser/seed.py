"""A small, varied inbox for the browser tests and the screenshots: requests through the
gateway's own intake, plus rows as the SMS / e-mail / Telegram channels will store them
(with a photo and a voice message), since those adapters are built separately."""

from __future__ import annotations

import math
import struct
import wave
import zlib
from datetime import timedelta
from pathlib import Path

from gateway.models import Attachment, Citizen, ContactPoint, Event, Message, Request, utcnow
from tests.support.staff import fixture, submit

OTHER_DOORS = [
    ("sms", "Il y a un nid-de-poule énorme au coin de la rue King et de la rue Principale", "pothole",
     "travaux_publics", "routine", "phone", "+18195550123", 30),
    ("email", "Bonjour, les ordures n'ont pas été ramassées mardi sur la rue des Pins.", "garbage",
     "environnement", "routine", "email", "lucie.fortin@example.org", 26),
    ("telegram", "Dead raccoon on the bike path near the river, behind the arena.", "animals",
     "reglementation", "routine", "telegram", "555010042", 50),
]


def seed(runtime, data_dir: Path) -> dict[str, str]:
    codes = {
        "pothole": submit(runtime, fixture("request__pothole_fr")),
        "light": submit(runtime, fixture("request__streetlight_en")),
        "water": submit(runtime, fixture("request__water_main_urgent")),
        "graffiti": submit(runtime, fixture("request__anonymous_walk_in")),
    }
    now = utcnow()
    with runtime.db.session() as db:
        for i, (channel, text, category, department, priority, kind, value, sla) in enumerate(OTHER_DOORS):
            citizen = Citizen(language="en" if channel == "telegram" else "fr", preferred_channel=channel)
            db.add(citizen)
            db.flush()
            db.add(ContactPoint(citizen_id=citizen.id, kind=kind, value=value))
            created = now - timedelta(hours=30 - i)
            request = Request(code=f"R-2026-55501{i:02d}", status="routed", priority=priority, category=category,
                              department=department, channel=channel, language=citizen.language,
                              citizen_id=citizen.id, description=text, created_at=created,
                              sla_due_at=created + timedelta(hours=sla), rule=None,
                              decision={"matched_by": "category"})
            db.add(request)
            db.flush()
            message = Message(request_id=request.id, direction="in", channel=channel, body=text, created_at=created)
            db.add(message)
            db.add(Event(request_id=request.id, actor=f"channel:{channel}", type="received", at=created,
                         data={"channel": channel}))
            db.add(Event(request_id=request.id, actor="system:router", type="routed", at=created,
                         data={"rule": None, "matched_by": "category", "category": category,
                               "department": department, "sinks": ["email_smtp"]}))
            db.flush()
            codes[channel] = request.code
            if channel == "sms":
                _attach(db, data_dir, request, message, "photo.png", "image/png", _png())
            if channel == "telegram":
                _attach(db, data_dir, request, message, "voice.wav", "audio/wav", _wav())
    return codes


def _attach(db, data_dir: Path, request, message, name: str, content_type: str, content: bytes) -> None:
    folder = data_dir / "attachments" / request.code
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)
    db.add(Attachment(request_id=request.id, message_id=message.id, filename=name, content_type=content_type,
                      size=len(content), storage_path=f"attachments/{request.code}/{name}"))


def _png(width: int = 320, height: int = 180) -> bytes:
    """A grey road with a dark hole: a real PNG, written without an imaging library."""
    rows = []
    for y in range(height):
        row = bytearray([0])
        for x in range(width):
            inside = ((x - 160) / 70) ** 2 + ((y - 100) / 35) ** 2 < 1
            shade = 45 if inside else (150 if (y // 6 + x // 9) % 5 else 135)
            row += bytes([shade, shade, shade + (10 if not inside else 0)])
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")


def _wav(seconds: float = 1.0, rate: int = 8000) -> bytes:
    import io

    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * t / rate)))
                               for t in range(int(seconds * rate))))
    return out.getvalue()
