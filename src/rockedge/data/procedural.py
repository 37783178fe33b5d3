"""Procedural rock scenes: a height field of irregular rocks on textured ground, lit by one sun.

The renderer builds three things per pixel: a height (ground bumps plus one dome per rock, the
visible rock being the highest, as seen from above), a rock id, and an albedo. Shading comes from the
height field's normals, cast shadows from marching the height field towards the sun, ambient
occlusion from how far a pixel sits below its neighbourhood. The mask is the rock-id map, so it is
exact. Colours are drawn so that rocks and ground overlap (rocks of the ground's own material, shadow
on ground as dark as shaded rock): a pixel's colour alone does not say "rock".

numpy + OpenCV only; float32 throughout to stay fast (a 256x256 scene takes a few milliseconds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Ground materials: base RGB and the spread of each channel (scaled per scene).
GROUNDS: dict[str, tuple[tuple[float, float, float], float]] = {
    "soil": ((105, 78, 55), 25),
    "sand": ((196, 170, 128), 25),
    "gravel": ((128, 120, 108), 25),
    "regolith": ((118, 116, 112), 20),
}
# Rock materials (RGB); "ground" means: the same material as the ground, slightly shifted.
ROCKS: dict[str, tuple[float, float, float]] = {
    "granite": (150, 148, 142),
    "basalt": (68, 66, 70),
    "sandstone": (186, 148, 108),
    "red": (150, 92, 70),
    "limestone": (196, 190, 176),
    "greenstone": (104, 114, 98),
}
# Size regimes: (probability, radius range as a fraction of the reference side, coverage range).
REGIMES: dict[str, tuple[float, tuple[float, float], tuple[float, float]]] = {
    "boulders": (0.25, (0.09, 0.26), (0.12, 0.45)),
    "mixed": (0.30, (0.035, 0.16), (0.15, 0.55)),
    "pile": (0.25, (0.03, 0.10), (0.25, 0.65)),
    "gravel": (0.20, (0.026, 0.06), (0.25, 0.55)),
}
MAX_ROCKS = 5000


@dataclass(frozen=True)
class SceneInfo:
    """What was drawn; handy for debugging and for docs."""

    ground: str
    regime: str
    rocks: int
    light_azimuth_deg: float
    light_elevation_deg: float


def value_noise(rng: np.random.Generator, h: int, w: int, period: float) -> np.ndarray:
    """Smooth noise with features about ``period`` px apart, unit-ish std (a bicubic-upsampled random grid)."""
    gh, gw = max(2, int(math.ceil(h / period)) + 1), max(2, int(math.ceil(w / period)) + 1)
    grid = rng.standard_normal((gh, gw), dtype=np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def fbm(rng: np.random.Generator, h: int, w: int, period: float, octaves: int = 4, gain: float = 0.5) -> np.ndarray:
    """Fractal noise: octaves of value noise, each half the period and ``gain`` times the amplitude.

    Summed on a canvas where the finest octave still has ~4 px per cell, then upsampled once: smooth
    noise does not need full resolution, and this keeps large-period noise nearly free.
    """
    octaves = max(1, min(octaves, int(math.log2(max(period, 2.0) / 1.5)) + 1))
    f = max(1.0, period / 2 ** (octaves - 1) / 4)
    sh, sw = max(2, int(round(h / f))), max(2, int(round(w / f)))
    out = np.zeros((sh, sw), np.float32)
    amp, norm, p = 1.0, 0.0, period / f
    for _ in range(octaves):
        out += amp * value_noise(rng, sh, sw, p)
        norm += amp * amp
        amp *= gain
        p /= 2
    out *= 1.0 / math.sqrt(norm)
    return out if f == 1.0 else cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)


def _rgb_jitter(rng: np.random.Generator, base: tuple[float, float, float], spread: float) -> np.ndarray:
    shade = rng.normal(0, spread)  # brightness moves all channels together
    return np.clip(np.asarray(base, np.float32) + shade + rng.normal(0, spread * 0.2, 3), 15, 245)


def rock_polygons(rng: np.random.Generator, radii: np.ndarray) -> list[np.ndarray]:
    """Irregular closed outlines around (0, 0), one per radius: harmonics give the overall lumpiness,
    per-vertex jitter the facets, a squash and a turn the elongation. Drawn for all rocks at once."""
    n_rocks, vmax = len(radii), 22
    nv = rng.integers(7, vmax + 1, n_rocks)
    j = np.arange(vmax)[None, :] + rng.uniform(-0.35, 0.35, (n_rocks, vmax))
    theta = j * (2 * np.pi / nv[:, None])
    radius = np.ones((n_rocks, vmax))
    for k in (2, 3, 4, 5):
        amp = rng.uniform(0, 0.28 / k, (n_rocks, 1))
        radius += amp * np.cos(k * theta + rng.uniform(0, 2 * np.pi, (n_rocks, 1)))
    radius += rng.uniform(-1, 1, (n_rocks, vmax)) * rng.uniform(0.02, 0.14, (n_rocks, 1))
    radius = np.clip(radius, 0.45, 1.6) * radii[:, None]
    x, y = radius * np.cos(theta), radius * np.sin(theta) * rng.uniform(0.55, 1.0, (n_rocks, 1))
    a = rng.uniform(0, np.pi, (n_rocks, 1))
    ca, sa = np.cos(a), np.sin(a)
    pts = np.stack([x * ca - y * sa, x * sa + y * ca], -1)
    return [pts[i, : nv[i]] for i in range(n_rocks)]


def render(
    rng: np.random.Generator,
    size_hw: tuple[int, int],
    ref: float | None = None,
    *,
    regimes: tuple[str, ...] | None = None,
    camera_effects: bool = True,
    instances: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, SceneInfo]:
    """Render one scene: BGR uint8 image, uint8 mask (1 = rock), and what was drawn.

    ``ref`` is the side length rock sizes are relative to (default: the shorter side); a large canvas
    for video uses the frame's side so rocks keep their on-screen size. ``regimes`` restricts the
    size regimes drawn from; ``camera_effects=False`` skips blur (a video canvas is not one exposure).
    ``instances``, when given a list, receives the scene's instance map (:func:`instance_ids`); it draws nothing
    from ``rng``, so asking for it changes no scene.
    """
    h, w = int(size_hw[0]), int(size_hw[1])
    ref = float(ref or min(h, w))

    # -- ground ----------------------------------------------------------------------------------
    ground = str(rng.choice(list(GROUNDS)))
    base, spread = GROUNDS[ground]
    ground_rgb = _rgb_jitter(rng, base, spread)
    tex_large = fbm(rng, h, w, ref * rng.uniform(0.3, 0.8), 3)
    tex_fine = fbm(rng, h, w, max(2.0, ref * rng.uniform(0.01, 0.04)), 2)
    # Uniform noise from random bytes, scaled to unit std: far cheaper than Gaussian, looks the same.
    noise = np.frombuffer(rng.bytes(h * w * 4), np.uint8).reshape(h, w, 4).astype(np.float32)
    noise -= 127.5
    noise *= np.float32(math.sqrt(12) / 256)
    grain = noise[..., 3]
    grain_amp = {"sand": 0.05, "soil": 0.08, "gravel": 0.2, "regolith": 0.1}[ground] * rng.uniform(0.5, 1.5)
    ground_albedo_mod = 1 + rng.uniform(0.08, 0.25) * tex_large + rng.uniform(0.04, 0.15) * tex_fine + grain_amp * grain
    height = fbm(rng, h, w, ref * rng.uniform(0.05, 0.2), 3) * (ref * rng.uniform(0.002, 0.012))
    if ground in ("gravel", "regolith"):
        _pebbles(rng, height, ground_albedo_mod, ref, ground)

    # -- rocks -------------------------------------------------------------------------------------
    names = list(regimes or REGIMES)
    weights = np.asarray([REGIMES[k][0] for k in names])
    regime = str(rng.choice(names, p=weights / weights.sum()))
    _, (rmin, rmax), (cmin, cmax) = REGIMES[regime]
    rmin, rmax = rmin * ref, rmax * ref
    coverage = rng.uniform(cmin, cmax)
    xs, ys, radii, lifts = _layout(rng, regime, h, w, rmin, rmax, coverage)
    n = len(radii)
    rock_id = np.zeros((h, w), np.int32)
    facet = fbm(rng, h, w, max(3.0, rmin * rng.uniform(0.4, 1.0)), 2)
    polys = rock_polygons(rng, radii)
    # Per-rock shape of the dome: where the flank ends, how rounded, how tall, how bumpy.
    # Python floats: numpy float64 scalars would promote the float32 patches to float64.
    flank = rng.uniform(0.5, 1.0, n).tolist()
    power = rng.uniform(1.6, 3.0, n).tolist()
    tall = (radii * rng.uniform(0.35, 0.8, n)).tolist()
    bumpy = (radii * rng.uniform(0.03, 0.1, n)).tolist()
    xs, ys, lifts = xs.tolist(), ys.tolist(), lifts.tolist()
    for k in range(n):
        _place_rock(rock_id, height, facet, k + 1, xs[k], ys[k], polys[k], lifts[k], flank[k], power[k], tall[k], bumpy[k])
    mask = (rock_id > 0).astype(np.uint8)
    # Colours: a share of rocks is the ground's own material (the hard case), the rest from ROCKS.
    camouflage = rng.uniform(0.1, 0.5)
    own = rng.uniform(size=n) < camouflage
    rock_names = list(ROCKS)
    picks = rng.integers(0, len(rock_names), n)
    own_rgb = ground_rgb * rng.uniform(0.8, 1.2, (n, 1)) + rng.normal(0, 5, (n, 3))
    named = np.asarray([ROCKS[k] for k in rock_names], np.float32)[picks]
    named_rgb = named + rng.normal(0, 22, (n, 1)) + rng.normal(0, 22 * 0.2, (n, 3))
    colours = np.concatenate([ground_rgb[None], np.where(own[:, None], own_rgb, named_rgb)]).clip(10, 250)
    tex_fine_amp = np.concatenate([[0.0], rng.uniform(0.03, 0.2, n)]).astype(np.float32)
    tex_mottle_amp = np.concatenate([[0.0], rng.uniform(0.04, 0.3, n)]).astype(np.float32)

    # -- albedo (one grey modulation per pixel; the colour comes from a per-rock lookup at the end) ------
    mottle = fbm(rng, h, w, max(3.0, ref * rng.uniform(0.02, 0.08)), 3)
    rock_mod = 1 + np.take(tex_fine_amp, rock_id) * grain + np.take(tex_mottle_amp, rock_id) * mottle
    modulation = np.where(mask.astype(bool), rock_mod, ground_albedo_mod)

    # -- light -----------------------------------------------------------------------------------------
    az = rng.uniform(0, 2 * np.pi)
    el = math.radians(rng.uniform(18, 70))
    light = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)], np.float32)
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    lambert = np.clip((light[2] - gx * light[0] - gy * light[1]) / np.sqrt(gx * gx + gy * gy + 1), 0, 1)
    shadow = _cast_shadow(height, light, ref)
    soft = max(0.6, ref * 0.004)
    shadow = cv2.GaussianBlur(shadow, (0, 0), soft)
    ao_radius = max(2.0, rmax * 0.5)
    ao = np.clip((_blur_coarse(height, ao_radius) - height) * (1.0 / (ao_radius * 0.6)), 0, 1)
    ambient = rng.uniform(0.25, 0.5)
    direct = lambert * (1 - shadow * rng.uniform(0.65, 0.95))
    shade = (ambient * (1 - 0.6 * ao) + (1 - ambient) * direct) * (1 / (ambient + (1 - ambient) * light[2]))
    # Uneven light over the scene (cloud shadows, a lamp's falloff).
    shade *= np.exp(rng.uniform(0, 0.35) * fbm(rng, h, w, max(h, w) * rng.uniform(0.4, 1.0), 2))
    factor = modulation * shade
    # Auto-exposure to a random mean level (from a subsample): varied brightness without blowing bright
    # sand to white; a slight colour cast. Folded into the BGR lookup so the image is built in one pass.
    lut = colours[:, ::-1].astype(np.float32)
    sub = (np.take(lut, rock_id[::4, ::4], axis=0) * factor[::4, ::4, None]).mean()
    lut *= (rng.uniform(70, 165) / max(float(sub), 1.0)) * np.exp(rng.normal(0, 0.035, 3)).astype(np.float32)
    img = np.take(lut, rock_id, axis=0)
    img *= factor[..., None]

    # -- camera ------------------------------------------------------------------------------------------
    u = rng.uniform() if camera_effects else 1.0
    if u < 0.45:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.2) * max(1.0, ref / 256))
    elif u < 0.6:
        img = _motion_blur(rng, img, max(3, int(ref * rng.uniform(0.01, 0.03))))
    img += noise[..., :3] * np.float32(rng.uniform(0.5, 4.0))
    bgr = np.clip(img, 0, 255, out=img).astype(np.uint8)
    info = SceneInfo(ground, regime, n, math.degrees(az) % 360, math.degrees(el))
    if instances is not None:
        instances.append(instance_ids(rock_id))
    return bgr, mask, info


def instance_ids(rock_id: np.ndarray) -> np.ndarray:
    """The drawn rocks as instances: ``uint16`` map, 0 = no rock, 1..n = the rocks that are visible (occlusion as
    drawn: a rock hidden by others keeps only its visible part, which may be in pieces), numbered in raster order
    of their first visible pixel."""
    flat = rock_id.ravel()
    nz = np.flatnonzero(flat)
    out = np.zeros(rock_id.shape, np.uint16)
    if not nz.size:
        return out
    ids, first = np.unique(flat[nz], return_index=True)
    if len(ids) > 65535:
        raise ValueError(f"{len(ids)} visible rocks do not fit a 16-bit instance mask")
    remap = np.zeros(int(ids.max()) + 1, np.uint16)
    remap[ids[np.argsort(first)]] = np.arange(1, len(ids) + 1, dtype=np.uint16)
    return remap[rock_id]


def _layout(
    rng: np.random.Generator, regime: str, h: int, w: int, rmin: float, rmax: float, coverage: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rock centres, radii and lifts (pile height under a rock), drawn until their area reaches ``coverage``."""
    # More small rocks than big ones; the expected area per rock sets how many to draw.
    u = rng.uniform(0, 1, 4096) ** 1.6
    radii = rmin * (rmax / rmin) ** u
    # 0.8: outlines are a bit smaller than their radius; 1.25: overlaps hide part of each rock.
    area = np.cumsum(np.pi * radii**2 * 0.8)
    n = int(min(np.searchsorted(area, coverage * h * w * 1.25) + 1, MAX_ROCKS, len(radii)))
    radii = radii[:n]
    if regime == "pile":
        centres = rng.uniform(0.15, 0.85, (int(rng.integers(1, 4)), 2)) * (w, h)
        sigma = rng.uniform(0.2, 0.45) * max(h, w)
        c = centres[rng.integers(0, len(centres), n)]
        xs = rng.normal(c[:, 0], sigma)
        ys = rng.normal(c[:, 1], sigma * 0.7)
        d2 = np.min([((xs - cx) ** 2 + ((ys - cy) / 0.7) ** 2) for cx, cy in centres], axis=0)
        lifts = np.exp(-d2 / (2 * sigma**2)) * sigma * 0.3
    else:
        xs = rng.uniform(-0.3 * radii, w + 0.3 * radii)
        ys = rng.uniform(-0.3 * radii, h + 0.3 * radii)
        lifts = np.zeros(n)
    # Far-back rocks first is irrelevant for a z-buffer, but drawing big ones last keeps boulders whole.
    return xs, ys, radii, lifts


def _place_rock(
    rock_id: np.ndarray,
    height: np.ndarray,
    facet: np.ndarray,
    k: int,
    x: float,
    y: float,
    pts: np.ndarray,
    lift: float,
    flank: float,
    power: float,
    tall: float,
    bumpy: float,
) -> None:
    """Z-buffer one rock dome into the height field; the visible rock at a pixel is the highest one."""
    found = outline_distance(rock_id.shape, x, y, pts)
    if found is None:
        return
    sl, dist = found
    inside = dist > 0
    core = max(float(dist.max()), 1.0)
    if core <= 1.0 and not inside.any():
        return
    # Rounded flanks and a flattish top.
    t = np.minimum(dist * (1.0 / (core * flank)), 1.0)
    hp = height[sl]
    zbuffer(rock_id, height, sl, inside, (float(hp.min()) + lift) + (1 - (1 - t) ** power) * tall + facet[sl] * bumpy, k)


def outline_distance(shape: tuple[int, ...], x: float, y: float,
                     pts: np.ndarray) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """A rock outline ``pts`` placed at (x, y), rasterised with sub-pixel precision: the frame slices it covers and
    each pixel's distance to its edge (0 outside it), or None when it lies (almost) off the frame."""
    h, w = shape[:2]
    pad = 2
    lo, hi = pts.min(0), pts.max(0)
    x0, y0 = int(math.floor(x + lo[0])) - pad, int(math.floor(y + lo[1])) - pad
    x1, y1 = int(math.ceil(x + hi[0])) + pad, int(math.ceil(y + hi[1])) + pad
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx1 - cx0 < 2 or cy1 - cy0 < 2:
        return None
    local = np.zeros((y1 - y0, x1 - x0), np.uint8)
    # 4 fractional bits: sub-pixel outlines so small rocks are not all pixel staircase.
    poly = np.round((pts + (x - x0, y - y0)) * 16).astype(np.int32)
    cv2.fillPoly(local, [poly], 1, lineType=cv2.LINE_8, shift=4)
    dist = cv2.distanceTransform(local, cv2.DIST_L2, 3)
    return (slice(cy0, cy1), slice(cx0, cx1)), dist[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]


def zbuffer(rock_id: np.ndarray, height: np.ndarray, sl: tuple[slice, slice], inside: np.ndarray,
            rock_h: np.ndarray, k: int) -> None:
    """Rock ``k`` (heights ``rock_h`` over ``sl``) is the visible one wherever it is inside its outline and higher
    than what is there."""
    hp = height[sl]
    vis = inside & (rock_h > hp)
    hp[vis] = rock_h[vis]
    rock_id[sl][vis] = k


def _pebbles(rng: np.random.Generator, height: np.ndarray, albedo_mod: np.ndarray, ref: float, ground: str) -> None:
    """Sub-rock-scale stones in the ground: texture, not labelled (they are far below the smallest rock)."""
    h, w = height.shape
    rp = max(1.0, ref * 0.006)
    n = int(h * w / (math.pi * rp * rp) * (0.25 if ground == "gravel" else 0.05))
    n = min(n, 200_000)
    bumps = np.zeros((h, w), np.float32)
    xs = rng.integers(0, w, n)
    ys = rng.integers(0, h, n)
    bumps[ys, xs] = rng.uniform(0.5, 1.0, n).astype(np.float32)
    bumps = cv2.GaussianBlur(bumps, (0, 0), rp) * (2 * math.pi * rp * rp)
    height += bumps * rp * 0.8
    tone = np.zeros((h, w), np.float32)
    tone[ys, xs] = rng.normal(0, 0.25, n).astype(np.float32)
    albedo_mod += cv2.GaussianBlur(tone, (0, 0), rp) * (2 * math.pi * rp * rp)


def _cast_shadow(height: np.ndarray, light: np.ndarray, ref: float) -> np.ndarray:
    """1 where something between the pixel and the sun rises above the sun's ray, else 0.

    Marches the height field towards the sun in a dozen steps, each a whole-image shift, at half
    resolution: the result is blurred into a soft shadow anyway.
    """
    h, w = height.shape
    horiz = math.hypot(float(light[0]), float(light[1]))
    if horiz < 1e-3:
        return np.zeros_like(height)
    scale = 0.5 if min(h, w) >= 64 else 1.0
    small = cv2.resize(height, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) * scale if scale != 1 else height
    sh, sw = small.shape
    dx, dy = light[0] / horiz, light[1] / horiz
    tan_el = float(light[2]) / horiz
    rise = float(small.max() - small.min())
    reach = min(rise / tan_el, 0.8 * ref * scale)
    steps = 12
    shadow = np.zeros_like(small)
    if reach < 1:
        return np.zeros_like(height)
    eps = max(0.5, ref * scale * 0.002)
    for s in np.linspace(reach / steps, reach, steps):
        m = np.array([[1, 0, -dx * s], [0, 1, -dy * s]], np.float32)
        # Sample the height s px towards the sun (sub-pixel, edges replicated).
        ahead = cv2.warpAffine(small, m, (sw, sh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        np.maximum(shadow, (ahead - small > s * tan_el + eps).astype(np.float32), out=shadow)
    return shadow if scale == 1 else cv2.resize(shadow, (w, h), interpolation=cv2.INTER_LINEAR)


def _blur_coarse(a: np.ndarray, sigma: float) -> np.ndarray:
    """A wide Gaussian blur computed at reduced resolution (a wide blur has no fine detail to lose)."""
    f = max(1.0, sigma / 4)
    if f < 2:
        return cv2.GaussianBlur(a, (0, 0), sigma)
    h, w = a.shape[:2]
    small = cv2.resize(a, (max(1, int(w / f)), max(1, int(h / f))), interpolation=cv2.INTER_AREA)
    return cv2.resize(cv2.GaussianBlur(small, (0, 0), sigma / f), (w, h), interpolation=cv2.INTER_LINEAR)


def _motion_blur(rng: np.random.Generator, img: np.ndarray, length: int) -> np.ndarray:
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0 / length
    rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), rng.uniform(0, 180), 1.0)
    k = cv2.warpAffine(k, rot, (length, length))
    return cv2.filter2D(img, -1, k / max(k.sum(), 1e-6))
