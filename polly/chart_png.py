"""Draws a memory chart (a ChartSpec as JSON on stdin) as a PNG on stdout, with Pillow.

Run as its own short-lived process (`python -m polly.chart_png`, see polly/chart.py), never
imported by the bot: Pillow costs about 5 MiB of RSS once loaded (matplotlib 59 MiB and 2.4 s),
and a process that exits gives all of it back, so the bot's memory does not notice a chart.
Drawn at twice the size and scaled down, for smooth lines. Opaque, with its own colours, so it
reads the same in Discord's dark and light themes.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from polly.formatting import format_bytes

SCALE = 2
BACKGROUND = (30, 31, 34)
PLOT = (43, 45, 49)
GRID = (70, 73, 80)
TEXT = (220, 221, 222)
MUTED = (150, 153, 160)
# Okabe-Ito colours, told apart with any colour vision (tests/polly/test_chart.py simulates the
# three dichromacies): limit, alert line, fired and resolved were red, orange, red and green.
RSS = (86, 180, 233)  # sky blue
BAND = (40, 80, 112)
LIMIT = (213, 94, 0)  # vermillion
THRESHOLD = (240, 228, 66)  # yellow
FIRED = (204, 121, 167)  # reddish purple
RESOLVED = (0, 158, 115)  # bluish green
CHECKPOINT = (230, 159, 0)  # orange
CLEANUP = (200, 200, 200)
GAP = (60, 50, 50)


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def nice_step(span: float, ticks: int = 5) -> float:
    raw = span / max(1, ticks)
    magnitude = 10 ** int(f"{raw:e}".split("e")[1])
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


class Canvas:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.w, self.h = spec["width"] * SCALE, spec["height"] * SCALE
        self.image = Image.new("RGB", (self.w, self.h), BACKGROUND)
        self.draw = ImageDraw.Draw(self.image)
        # Sized for Discord's preview, which shows the 800-pixel image about 400-520 pixels wide:
        # 18-pixel labels stay about 9-12 pixels tall there.
        self.small = ImageFont.load_default(size=18 * SCALE)
        self.title_font = ImageFont.load_default(size=22 * SCALE)
        self.left, self.right = 112 * SCALE, self.w - 16 * SCALE
        self.top, self.bottom = 62 * SCALE, self.h - 92 * SCALE
        self.x0, self.x1 = spec["start"], spec["end"]
        self.y0, self.y1 = spec["y_min"], spec["y_max"]
        self._corner_lines = 0
        self.labels: list[tuple[str, tuple[float, float, float, float]]] = []  # every text drawn, and where

    def text(
        self,
        xy: tuple[float, float],
        text: str,
        font: Any,
        fill: tuple[int, int, int],
        anchor: str = "la",
        nudges: tuple[tuple[float, float], ...] = (),
    ) -> bool:
        """Draw `text` where it overlaps no label drawn before: at `xy`, else at the first of `xy`
        moved by each nudge that is free; not at all when none is (labels never overlap)."""
        for dx, dy in ((0.0, 0.0), *nudges):
            at = (xy[0] + dx, xy[1] + dy)
            box = self.draw.textbbox(at, text, font=font, anchor=anchor)
            if not any(_overlap(box, other) for _, other in self.labels):
                self.draw.text(at, text, font=font, fill=fill, anchor=anchor)
                self.labels.append((text, box))
                return True
        return False

    def x(self, t: float) -> float:
        return self.left + (t - self.x0) / max(1e-9, self.x1 - self.x0) * (self.right - self.left)

    def y(self, value: float) -> float:
        return self.bottom - (value - self.y0) / max(1e-9, self.y1 - self.y0) * (self.bottom - self.top)

    def dashed(self, a: tuple[float, float], b: tuple[float, float], fill: tuple[int, int, int], width: int) -> None:
        (xa, ya), (xb, yb) = a, b
        length = max(1.0, ((xb - xa) ** 2 + (yb - ya) ** 2) ** 0.5)
        dash = 10 * SCALE
        steps = int(length // dash)
        for i in range(0, steps + 1, 2):
            f0, f1 = i * dash / length, min(1.0, (i + 1) * dash / length)
            self.draw.line(
                [(xa + (xb - xa) * f0, ya + (yb - ya) * f0), (xa + (xb - xa) * f1, ya + (yb - ya) * f1)], fill, width
            )

    def render(self) -> bytes:
        spec = self.spec
        d = self.draw
        d.rectangle([self.left, self.top, self.right, self.bottom], fill=PLOT)
        self.text((self.left, 10 * SCALE), spec["title"], self.title_font, TEXT)
        self._axes()
        for start, end in spec["gaps"]:
            d.rectangle([self.x(start), self.top, self.x(end), self.bottom], fill=GAP)
            label_x = (self.x(start) + self.x(end)) / 2
            self.text((label_x, self.bottom - 6 * SCALE), "no data", self.small, MUTED, "mb")
        self._level(spec.get("limit"), LIMIT, spec.get("limit_label", ""), dashed=False)
        self._level(spec.get("threshold"), THRESHOLD, spec.get("threshold_label", ""), dashed=True)
        for segment in spec["segments"]:
            self._segment(segment)
        projection = spec.get("projection")
        if projection:
            a, b = projection
            self.dashed((self.x(a[0]), self.y(a[1])), (self.x(b[0]), self.y(b[1])), RSS, 3 * SCALE)
            self.text(  # below the line's end, else above it (never over the axis or a level's label)
                (self.x(b[0]) - 4 * SCALE, self.y(b[1]) + 6 * SCALE),
                spec.get("eta_label", ""),
                self.small,
                RSS,
                "ra",
                nudges=tuple((0.0, -k * 22 * SCALE) for k in range(2, 8)),
            )
        for marker in spec["markers"]:
            self._marker(marker)
        self._legend()
        small = self.image.resize((spec["width"], spec["height"]), Image.Resampling.LANCZOS)
        from io import BytesIO

        out = BytesIO()
        small.save(out, "PNG", optimize=True)
        return out.getvalue()

    def _axes(self) -> None:
        d, spec = self.draw, self.spec
        mib = 1024 * 1024
        step = nice_step((self.y1 - self.y0) / mib) * mib  # round MiB values on the axis
        value = (self.y0 // step + 1) * step
        while value < self.y1:
            y = self.y(value)
            d.line([(self.left, y), (self.right, y)], GRID, SCALE)
            self.text((self.left - 8 * SCALE, y), format_bytes(int(value)), self.small, MUTED, "rm")
            value += step
        span = self.x1 - self.x0
        hour = 3600.0
        candidates = (hour / 4, hour / 2, hour, 2 * hour, 3 * hour, 6 * hour, 12 * hour, 24 * hour, 48 * hour)
        step_t = next((c for c in candidates if span / c <= 8), 48 * hour)
        t = (self.x0 // step_t + 1) * step_t
        while t < self.x1:
            x = self.x(t)
            d.line([(x, self.top), (x, self.bottom)], GRID, SCALE)
            when = datetime.fromtimestamp(t, UTC)
            midnight = when.hour == 0 and when.minute == 0
            label = when.strftime("%a %d %H:%M") if step_t >= 24 * hour or midnight else when.strftime("%H:%M")
            self.text((x, self.bottom + 6 * SCALE), label, self.small, MUTED, "mt")  # skipped if it would overlap
            t += step_t
        self.text((self.left - 8 * SCALE, self.bottom + 6 * SCALE), spec["axis_note"], self.small, MUTED, "ra")

    def _level(self, value: float | None, colour: tuple[int, int, int], label: str, *, dashed: bool) -> None:
        if value is None:
            return
        if not self.y0 <= value <= self.y1:  # said in the header, right-aligned, one line per level
            where = "above the chart" if value > self.y1 else "below the chart"
            y: float = (6 + 24 * self._corner_lines) * SCALE
            self._corner_lines += 1
            self.text((self.right, y), f"{label}: {where}", self.small, colour, "ra")
            return
        y = self.y(value)
        if dashed:
            self.dashed((self.left, y), (self.right, y), colour, 2 * SCALE)
        else:
            self.draw.line([(self.left, y), (self.right, y)], colour, 2 * SCALE)
        # above its line, else below it, else further up (two levels close together)
        nudges = ((0.0, 26 * SCALE), (0.0, -22 * SCALE), (0.0, 48 * SCALE), (0.0, -44 * SCALE))
        self.text((self.left + 8 * SCALE, y - 4 * SCALE), label, self.small, colour, "lb", nudges)

    def _segment(self, points: list[list[float]]) -> None:
        if len(points) == 1:
            t, _low, mean, _high = points[0]
            r = 3 * SCALE
            self.draw.ellipse([self.x(t) - r, self.y(mean) - r, self.x(t) + r, self.y(mean) + r], fill=RSS)
            return
        band = [(self.x(p[0]), self.y(p[3])) for p in points] + [(self.x(p[0]), self.y(p[1])) for p in reversed(points)]
        self.draw.polygon(band, fill=BAND)
        self.draw.line([(self.x(p[0]), self.y(p[2])) for p in points], RSS, 3 * SCALE, joint="curve")

    def _marker(self, marker: dict[str, Any]) -> None:
        d = self.draw
        x = self.x(marker["t"])
        kind = marker["kind"]
        r = 7 * SCALE
        if kind in ("fired", "resolved"):
            colour = FIRED if kind == "fired" else RESOLVED
            d.line([(x, self.top), (x, self.bottom)], colour, SCALE)
            tip = self.top + r * 1.6
            if kind == "fired":
                d.polygon([(x - r, self.top), (x + r, self.top), (x, tip)], fill=colour)
            else:
                d.polygon([(x - r, tip), (x + r, tip), (x, self.top)], fill=colour)
        elif kind == "auto_cleanup":
            d.line([(x, self.bottom - 10 * SCALE), (x, self.bottom)], CLEANUP, 2 * SCALE)
        else:
            y = self.y(marker["rss"]) if marker.get("rss") is not None else self.bottom - r
            if kind == "cleanup":
                d.ellipse([x - r, y - r, x + r, y + r], outline=CLEANUP, width=3 * SCALE)
            else:  # a checkpoint, manual or automatic
                size = r if kind == "checkpoint" else r * 0.6
                d.polygon([(x, y - size), (x + size, y), (x, y + size), (x - size, y)], fill=CHECKPOINT)

    def _legend(self) -> None:
        items = [
            (RSS, "RSS (band: min to max)"),
            (THRESHOLD, "alert threshold"),
            (LIMIT, "limit"),
            (FIRED, "alert fired"),
            (RESOLVED, "resolved"),
            (CHECKPOINT, "checkpoint"),
            (CLEANUP, "cleanup (tick: automatic)"),
        ]
        x: float = 16 * SCALE
        y: float = self.h - 50 * SCALE
        for colour, label in items:
            width = 14 * SCALE + self.draw.textlength(label, font=self.small) + 18 * SCALE
            if x + width > self.w:  # wrap onto a second row
                x, y = 16 * SCALE, y + 26 * SCALE
            self.draw.rectangle([x, y - 6 * SCALE, x + 12 * SCALE, y + 6 * SCALE], fill=colour)
            self.text((x + 16 * SCALE, y), label, self.small, TEXT, "lm")
            x += width


def main() -> int:
    spec = json.load(sys.stdin)
    sys.stdout.buffer.write(Canvas(spec).render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
