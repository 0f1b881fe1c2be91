"""Terminal colour codes in program output, as HTML for the log panel or removed.

Programs colour their logs (Flask's request lines, pytest, pip's progress) with ANSI
escape sequences. The panel renders the SGR colours and bold (the 16 standard colours,
the 256-colour palette and 24-bit colour) and drops every other escape sequence
(cursor movement, titles), so no raw ``\\x1b[32m`` reaches the reader.
"""

from __future__ import annotations

import html
import re

__all__ = ["ansi_to_html", "strip_ansi"]

# CSI sequences (ESC [ … final byte), OSC sequences (ESC ] … BEL or ESC \), other ESC x.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")
_SGR = re.compile(r"\x1b\[([0-9;:]*)m")
_BASIC = ("#000000", "#c62828", "#2e7d32", "#f9a825", "#1565c0", "#6a1b9a", "#00838f",
          "#9e9e9e")
_BRIGHT = ("#616161", "#ef5350", "#66bb6a", "#fdd835", "#42a5f5", "#ab47bc", "#26c6da",
           "#ffffff")


def strip_ansi(text: str) -> str:
    """``text`` without escape sequences."""
    return _ESCAPES.sub("", text)


def _palette(index: int) -> str:
    if index < 8:
        return _BASIC[index]
    if index < 16:
        return _BRIGHT[index - 8]
    if index < 232:
        index -= 16
        levels = (0, 95, 135, 175, 215, 255)
        red, green, blue = levels[index // 36], levels[index // 6 % 6], levels[index % 6]
        return f"#{red:02x}{green:02x}{blue:02x}"
    grey = 8 + (index - 232) * 10
    return f"#{grey:02x}{grey:02x}{grey:02x}"


class _Style:
    """The SGR state: foreground, background, bold."""

    def __init__(self) -> None:
        self.fg: str | None = None
        self.bg: str | None = None
        self.bold = False

    def css(self) -> str:
        parts = [f"color:{self.fg}"] if self.fg else []
        parts += [f"background:{self.bg}"] if self.bg else []
        parts += ["font-weight:bold"] if self.bold else []
        return ";".join(parts)

    def apply(self, codes: list[int]) -> None:
        while codes:
            code = codes.pop(0)
            if code == 0:
                self.fg = self.bg = None
                self.bold = False
            elif code == 1:
                self.bold = True
            elif code == 22:
                self.bold = False
            elif 30 <= code <= 37 or 40 <= code <= 47:
                self._set(code >= 40, _BASIC[code % 10])
            elif 90 <= code <= 97 or 100 <= code <= 107:
                self._set(code >= 100, _BRIGHT[code % 10])
            elif code in (39, 49):
                self._set(code == 49, None)
            elif code in (38, 48) and codes:
                self._set(code == 48, self._extended(codes))

    def _set(self, background: bool, colour: str | None) -> None:
        if background:
            self.bg = colour
        else:
            self.fg = colour

    @staticmethod
    def _extended(codes: list[int]) -> str | None:
        mode = codes.pop(0)
        if mode == 5 and codes:
            return _palette(codes.pop(0) % 256)
        if mode == 2 and len(codes) >= 3:
            red, green, blue = (codes.pop(0) % 256 for _ in range(3))
            return f"#{red:02x}{green:02x}{blue:02x}"
        return None


def ansi_to_html(text: str) -> str:
    """``text`` as escaped HTML, its SGR colours as ``<span style>``; other escapes gone.
    Each call starts uncoloured (a line of a log stands alone)."""
    style = _Style()
    out: list[str] = []
    position = 0
    for match in _SGR.finditer(text):
        out.append(_span(strip_ansi(text[position:match.start()]), style.css()))
        codes = [int(c) if c.isdigit() else 0 for c in re.split("[;:]", match.group(1))]
        style.apply(codes or [0])
        position = match.end()
    out.append(_span(strip_ansi(text[position:]), style.css()))
    return "".join(out)


def _span(text: str, css: str) -> str:
    escaped = html.escape(text, quote=False)
    return f'<span style="{css}">{escaped}</span>' if css and escaped else escaped
