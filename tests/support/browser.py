"""Drive Debian's headless Chromium with Python playwright, and check screenshots' pixels.

Browser tests use :func:`chromium_context` (a fresh profile each time, no network
services, no GPU) and judge what the user would see from element screenshots:
:func:`screenshot_pixels` returns an ``(h, w, 3)`` uint8 array; :func:`assert_real_image`
fails on blank or uniform pictures; :func:`colour_fraction` measures how much of a
picture has a colour (an overlay's red, say).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from imaging_lib.reports.pdf import CHROMIUM, CHROMIUM_HEADLESS_ARGS

CHROMIUM_ARGS = list(CHROMIUM_HEADLESS_ARGS)

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "assert_real_image",
    "chromium_context",
    "collect_console",
    "colour_fraction",
    "screenshot_pixels",
]


@contextlib.contextmanager
def chromium_context(viewport: tuple[int, int] = (1280, 1000), timeout_ms: float = 60_000) -> Iterator[Any]:
    """Yield a playwright ``BrowserContext`` of headless Chromium with a throwaway profile.

    Parameters
    ----------
    viewport : (int, int)
        Window width and height in CSS pixels.
    timeout_ms : float
        Default timeout of waits and actions.
    """
    from playwright.sync_api import sync_playwright

    profile = Path(tempfile.mkdtemp(prefix="imaging-chromium-"))
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(profile),
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": viewport[0], "height": viewport[1]},
                device_scale_factor=1,
            )
            context.set_default_timeout(timeout_ms)
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def collect_console(page: Any) -> list[str]:
    """Record the page's console messages and uncaught errors into the returned list."""
    messages: list[str] = []
    page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: messages.append(f"pageerror: {error}"))
    return messages


def screenshot_pixels(target: Any) -> np.ndarray:
    """Screenshot a playwright ``Page`` or ``Locator`` and return its RGB pixels.

    Returns
    -------
    numpy.ndarray
        ``(height, width, 3)`` uint8.
    """
    from PIL import Image

    png = target.screenshot(animations="disabled")
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))


def assert_real_image(pixels: np.ndarray, *, min_std: float = 10.0, min_levels: int = 32) -> None:
    """Fail unless the picture has real image content: not blank, not one flat colour.

    Parameters
    ----------
    pixels : numpy.ndarray
        ``(h, w, 3)`` uint8 picture.
    min_std : float
        Smallest standard deviation of grey levels accepted.
    min_levels : int
        Fewest distinct grey levels accepted (a rendered scan has hundreds; text or a
        frame on a flat background has few).
    """
    grey = pixels[..., :3].astype(np.float64).mean(axis=-1)
    levels = len(np.unique(np.rint(grey)))
    assert pixels.size > 0, "empty screenshot"
    assert grey.std() >= min_std, f"picture is nearly uniform (grey std {grey.std():.2f} < {min_std})"
    assert levels >= min_levels, f"picture has only {levels} grey levels (< {min_levels}): not an image"


def colour_fraction(pixels: np.ndarray, rgb: tuple[int, int, int], *, tolerance: int = 60, dominance: int = 0) -> float:
    """Fraction of pixels close to ``rgb``.

    Parameters
    ----------
    pixels : numpy.ndarray
        ``(h, w, 3)`` uint8 picture.
    rgb : (int, int, int)
        Target colour.
    tolerance : int
        Largest difference allowed on every channel.
    dominance : int
        When positive, also require the target's strongest channel to exceed the other
        two by this much (tells an overlay's pure red from a reddish grey).
    """
    picture = pixels[..., :3].astype(np.int32)
    target = np.asarray(rgb, dtype=np.int32)
    close = np.all(np.abs(picture - target) <= tolerance, axis=-1)
    if dominance > 0:
        main = int(np.argmax(target))
        others = [c for c in range(3) if c != main]
        close &= np.all(picture[..., [main]] - picture[..., others] >= dominance, axis=-1)
    return float(close.mean())
