"""Is an audio file whole? Truncation checks from the container's own structure, without decoding.

Pedalboard's readers report the length a file's header declares and fill what is missing with silence,
so a half-copied WAV or FLAC would read as the first half followed by zeros. :func:`find_truncation`
compares what the header declares with what the file holds:

- WAV and AIFF: the ``data``/``SSND`` chunk's declared size against the bytes after it.
- FLAC: STREAMINFO's total samples against the end of the last frame whose CRC-16 checks out.
- MP3: every frame header from the first to the end of the file (the last frame must be complete), and
  the Xing/Info frame count where the encoder wrote one.
- Ogg (Vorbis, Opus, FLAC): the last page must be complete and carry the end-of-stream flag.

Only the header and the file's tail are read (MP3: one 4-byte header per frame), so the check is cheap
next to decoding. Files of other kinds are not checked.
"""

from __future__ import annotations

import struct
from pathlib import Path

__all__ = ["find_truncation"]

_TAIL = 1 << 16  # bytes of the file's end searched for the last FLAC frame / Ogg page


def find_truncation(path: str | Path, sample_rate: float) -> str | None:
    """What is missing from ``path`` (``"the header declares … samples, …"``), or ``None`` if it is whole.

    ``sample_rate``: the file's rate in Hz, to say how many seconds are missing. Structures this check
    cannot parse count as whole (the decoder then has its say).
    """
    try:
        return _find(Path(path), sample_rate)
    except (struct.error, IndexError, ValueError, KeyError):
        return None


def _missing(declared: int, held: int, rate: float, unit: str = "samples", per_unit: int = 1) -> str:
    seconds = (declared - held) * per_unit / rate if rate > 0 else 0.0
    return f"the header declares {declared} {unit}, the file holds {held} ({seconds:.2f} s missing)"


def _find(p: Path, rate: float) -> str | None:
    with open(p, "rb") as f:
        head = f.read(12)
        size = p.stat().st_size
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            return _riff(f, size, rate, little=True)
        if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            return _riff(f, size, rate, little=False)
        if head[:4] == b"fLaC":
            return _flac(f, size, rate)
        if head[:4] == b"OggS":
            return _ogg(f, size)
        if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
            return _mp3(f, size, head, rate)
    return None


def _riff(f, size: int, rate: float, little: bool) -> str | None:  # type: ignore[no-untyped-def]
    """WAV (little-endian RIFF) or AIFF (big-endian IFF): the sound data chunk against the file's end."""
    fmt = "<4sI" if little else ">4sI"
    pos, frame_bytes = 12, 0
    while pos + 8 <= size:
        f.seek(pos)
        cid, length = struct.unpack(fmt, f.read(8))
        body = pos + 8
        if little and cid == b"fmt ":
            frame_bytes = struct.unpack("<H", f.read(14)[12:14])[0]
        elif not little and cid == b"COMM":
            channels, _, bits = struct.unpack(">hIh", f.read(8))
            frame_bytes = channels * ((bits + 7) // 8)
        if cid in (b"data", b"SSND"):
            if length in (0, 0xFFFFFFFF):  # a streaming writer that never filled in the size
                return None
            present = size - body
            if present >= length:
                return None
            unit, skip = max(frame_bytes, 1), 8 if cid == b"SSND" else 0  # SSND: offset and block size first
            declared, held = (length - skip) // unit, max(present - skip, 0) // unit
            return _missing(declared, held, rate)
        pos = body + length + (length & 1)
    return None


def _flac(f, size: int, rate: float) -> str | None:  # type: ignore[no-untyped-def]
    f.seek(4)
    total = blocksize_fixed = 0
    while True:
        header = f.read(4)
        if len(header) < 4:
            return "the file ends inside its metadata"
        last, kind, length = header[0] & 0x80, header[0] & 0x7F, int.from_bytes(header[1:4], "big")
        block = f.read(length)
        if kind == 0 and len(block) >= 18:
            blocksize_fixed = struct.unpack(">H", block[0:2])[0]
            packed = int.from_bytes(block[10:18], "big")
            total = packed & ((1 << 36) - 1)
        if last:
            break
    audio_start = f.tell()
    if total == 0:
        return None  # length not declared
    f.seek(max(audio_start, size - _TAIL))
    end = _last_flac_frame_end(f.read(), blocksize_fixed)
    if end is not None and end < total:
        return _missing(total, end, rate)
    return None  # whole, or no frame header in the tail (frames larger than it): not decided here


_FLAC_BLOCK = {1: 192, 2: 576, 3: 1152, 4: 2304, 5: 4608, 8: 256, 9: 512, 10: 1024, 11: 2048, 12: 4096}
_FLAC_BLOCK.update({13: 8192, 14: 16384, 15: 32768})


def _table(poly: int, width: int) -> list[int]:
    top, mask = 1 << (width - 1), (1 << width) - 1
    table = []
    for byte in range(256):
        crc = byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & mask if crc & top else (crc << 1) & mask
        table.append(crc)
    return table


_CRC8, _CRC16 = _table(0x07, 8), _table(0x8005, 16)


def _crc8(data: bytes) -> int:
    crc = 0
    for b in data:
        crc = _CRC8[crc ^ b]
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[(crc >> 8) ^ b]
    return crc


def _last_flac_frame_end(tail: bytes, fixed: int) -> int | None:
    """The sample just after the last complete frame in ``tail`` (the file's last bytes), or None.

    A candidate frame start is a sync code with a valid header CRC-8. It is the last frame and complete
    when its CRC-16 covers the rest of the file; it is a real frame start, cut short, when the frame
    before it ends exactly there (that frame's CRC-16 checks out); otherwise it was a look-alike in the
    audio data and the search goes on.
    """
    starts = _flac_sync_candidates(tail)
    for n, i in enumerate(starts):
        first, count = _flac_frame_header(tail, i, fixed) or (0, 0)
        if _crc16(tail[i:-2]) == int.from_bytes(tail[-2:], "big"):
            return first + count
        for k in starts[n + 1 :]:
            if _crc16(tail[k : i - 2]) == int.from_bytes(tail[i - 2 : i], "big"):
                return first
    return None


def _flac_sync_candidates(tail: bytes) -> list[int]:
    """Positions of plausible frame headers in ``tail``, last first."""
    out = []
    i = len(tail) - 2
    while i >= 0:
        i = tail.rfind(b"\xff", 0, i + 1)
        if i < 0:
            break
        if tail[i + 1 : i + 2] in (b"\xf8", b"\xf9") and _flac_frame_header(tail, i, 0) is not None:
            out.append(i)
        i -= 1
    return out


def _flac_frame_header(data: bytes, i: int, fixed: int) -> tuple[int, int] | None:
    """(first sample, samples) of a frame header at ``data[i]`` whose CRC-8 checks out, else None."""
    if len(data) < i + 6:
        return None
    variable = data[i + 1] & 1
    bs_code, rate_code = data[i + 2] >> 4, data[i + 2] & 0x0F
    if bs_code == 0 or rate_code == 0x0F:
        return None
    # UTF-8-like coded frame or sample number
    b0, j = data[i + 4], i + 5
    if b0 < 0x80:
        n, extra = b0, 0
    else:
        extra = 0
        mask = 0x40
        while b0 & mask:
            extra += 1
            mask >>= 1
        if extra == 0 or extra > 6:
            return None
        n = b0 & (mask - 1)
        for _ in range(extra):
            if j >= len(data) or data[j] & 0xC0 != 0x80:
                return None
            n = (n << 6) | (data[j] & 0x3F)
            j += 1
    if bs_code == 6:
        count, j = data[j] + 1 if j < len(data) else 0, j + 1
    elif bs_code == 7:
        count, j = int.from_bytes(data[j : j + 2], "big") + 1, j + 2
    else:
        count = _FLAC_BLOCK.get(bs_code, 0)
    if rate_code == 12:
        j += 1
    elif rate_code in (13, 14):
        j += 2
    if j >= len(data) or count == 0 or _crc8(data[i:j]) != data[j]:
        return None
    first = n if variable else n * (fixed or count)
    return first, count


def _ogg(f, size: int) -> str | None:  # type: ignore[no-untyped-def]
    f.seek(max(0, size - _TAIL))
    tail = f.read()
    i = tail.rfind(b"OggS")
    while i >= 0:
        if len(tail) - i >= 27 and tail[i + 4] == 0:
            segments = tail[i + 26]
            table = tail[i + 27 : i + 27 + segments]
            end = i + 27 + segments + sum(table)
            if len(table) < segments or end > len(tail):
                return "the last page is cut short"
            if not tail[i + 5] & 0x04:
                return "the stream has no end (its last page lacks the end-of-stream flag)"
            return None
        i = tail.rfind(b"OggS", 0, i)
    return None


_MP3_BITRATES = {
    (3, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),  # MPEG-1 layer III
    (2, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),  # MPEG-2/2.5 layer III
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3(f, size: int, head: bytes, rate: float) -> str | None:  # type: ignore[no-untyped-def]
    pos = 0
    if head[:3] == b"ID3":
        f.seek(6)
        b = f.read(4)
        pos = 10 + ((b[0] << 21) | (b[1] << 14) | (b[2] << 7) | b[3])
    frames, declared, first, samples_per_frame = 0, None, True, 1152
    while pos + 4 <= size:
        f.seek(pos)
        h = f.read(4)
        if h[0] != 0xFF or h[1] & 0xE0 != 0xE0:
            if h[:3] == b"TAG" or frames > 0:
                break  # ID3v1 tag, or data after the last frame
            return None  # not a stream this check understands
        version, layer = (h[1] >> 3) & 3, (h[1] >> 1) & 3
        bitrate_i, rate_i, padding = h[2] >> 4, (h[2] >> 2) & 3, (h[2] >> 1) & 1
        if layer != 1 or version == 1 or rate_i == 3 or bitrate_i in (0, 15):
            return None  # layers I/II, free format: not checked
        table = _MP3_BITRATES[(3, 3)] if version == 3 else _MP3_BITRATES[(2, 3)]
        frame_rate = _MP3_RATES[version][rate_i]
        per_frame = 144 if version == 3 else 72
        samples_per_frame = 1152 if version == 3 else 576
        length = per_frame * table[bitrate_i] * 1000 // frame_rate + padding
        if first:
            f.seek(pos)
            data = f.read(length)
            for tag in (b"Xing", b"Info"):
                k = data.find(tag)
                if k >= 0 and len(data) >= k + 12 and data[k + 7] & 1:
                    declared = int.from_bytes(data[k + 8 : k + 12], "big")
            first = False
            if declared is not None:
                pos += length
                continue  # the Info frame holds no audio
        if pos + length > size:
            return f"the last audio frame is cut short after {frames} frames"
        frames += 1
        pos += length
    if declared is not None and frames < declared:
        return _missing(declared, frames, rate, "frames", samples_per_frame)
    return None
