"""Rock piles: scenes where rock fills the frame, as a camera over a muck pile, a stockpile or a belt sees it.

The scatter scenes of :mod:`rockedge.data.procedural` put rocks on ground, so "dark and textured = ground" is a
useful rule there. On a pile everything is rock: what tells one rock from the next is its outline, the facets that
catch a low sun differently, and the shadowed gaps between rocks. A model trained only on scatter scenes paints the
gaps and leaves the rocks (the original project's photos show it). These scenes teach the outline:

* sizes spanning 1-2 orders of magnitude (a power law between a few pixels and a quarter of the frame), placed until
  rock covers the frame; small rocks rest in the gaps of big ones;
* crushed-rock shapes: each rock's dome is cut by a few random planes, so it shows flat facets with sharp edges;
* granite (speckled), sandstone (warm, grainy, banded) and limestone (pale, smooth) textures, several per pile;
* a low sun (10-35 degrees) with hard shadows in the gaps, ambient occlusion deep in them, and dust (a haze and
  specks) over everything;
* sometimes a scale object lying on the pile: a square frame of metal bars or a ball, labelled not-rock, as
  fragmentation surveys lay them.

Labels are exact: the mask is the visible-rock map, the instance map its rock ids (occlusion as drawn).
numpy + OpenCV only, like the scatter scenes.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from rockedge.data.procedural import (
    SceneInfo,
    _blur_coarse,
    _cast_shadow,
    _motion_blur,
    fbm,
    instance_ids,
    outline_distance,
    rock_polygons,
    zbuffer,
)

# Materials of a pile: base RGB, grain (fine speckle), mottle (blotches), banding, dark speckle share.
MATERIALS: dict[str, tuple[tuple[float, float, float], float, float, float, float]] = {
    "granite": ((158, 152, 146), 0.22, 0.08, 0.0, 0.12),
    "sandstone": ((190, 150, 108), 0.12, 0.15, 0.05, 0.0),
    "limestone": ((200, 194, 182), 0.05, 0.18, 0.04, 0.0),
    "basalt": ((78, 76, 78), 0.10, 0.06, 0.0, 0.03),
}
SCALE_OBJECTS = ("frame", "ball")


def render_pile(rng: np.random.Generator, size_hw: tuple[int, int], *, instances: list[np.ndarray] | None = None,
                camera_effects: bool = True) -> tuple[np.ndarray, np.ndarray, SceneInfo]:
    """One pile scene: BGR uint8 image, uint8 mask (1 = rock), what was drawn; ``instances`` (a list) receives the
    uint16 instance map."""
    h, w = int(size_hw[0]), int(size_hw[1])
    ref = float(min(h, w))

    # -- rocks: a power law of sizes, drawn until their area covers the frame about twice -------------------------
    rmin = ref * rng.uniform(0.012, 0.025)
    rmax = ref * rng.uniform(0.12, 0.3)
    u = rng.uniform(0, 1, 6000) ** rng.uniform(1.8, 3.0)  # many small, few big
    radii = rmin * (rmax / rmin) ** u
    area = np.cumsum(np.pi * radii**2 * 0.8)
    n = int(min(np.searchsorted(area, h * w * rng.uniform(2.0, 2.8)) + 1, len(radii)))
    radii = np.sort(radii[:n])[::-1]  # big ones first: small ones settle on and between them
    xs = rng.uniform(-0.2 * radii, w + 0.2 * radii)
    ys = rng.uniform(-0.2 * radii, h + 0.2 * radii)
    height = fbm(rng, h, w, ref * 0.3, 2) * (ref * 0.01)
    rock_id = np.zeros((h, w), np.int32)
    polys = rock_polygons(rng, radii)
    tall = radii * rng.uniform(0.4, 0.8, n)
    base = rng.uniform(0.0, 0.35, n) * tall  # how far each rock sits up the pile: mixes the z-order
    for k in range(n):
        _place_faceted(rng, rock_id, height, k + 1, float(xs[k]), float(ys[k]), polys[k], float(radii[k]),
                       float(tall[k]), float(base[k]))
    mask = (rock_id > 0).astype(np.uint8)

    # -- albedo: one dominant material (sometimes a second), rocks differing in brightness more than in hue --------
    names = list(MATERIALS)
    first = int(rng.integers(0, len(names)))
    second = int(rng.integers(0, len(names))) if rng.uniform() < 0.35 else first
    mat = np.where(rng.uniform(size=n) < rng.uniform(0.1, 0.4), second, first)
    pile_tint = np.exp(rng.normal(0, 0.06, 3)).astype(np.float32)  # this pile's hue (iron staining, lighting)
    base_rgb = np.asarray([MATERIALS[names[i]][0] for i in mat], np.float32) * pile_tint
    colours = base_rgb * rng.uniform(0.78, 1.18, (n, 1)) + rng.normal(0, 3, (n, 3))
    gap = np.asarray(MATERIALS[names[first]][0], np.float32) * pile_tint * rng.uniform(0.35, 0.6)  # fines, shaded
    colours = np.concatenate([gap[None], colours]).clip(10, 250)
    grain_amp = np.concatenate([[0.35], [MATERIALS[names[i]][1] for i in mat]]).astype(np.float32)
    mottle_amp = np.concatenate([[0.15], [MATERIALS[names[i]][2] for i in mat]]).astype(np.float32)
    band_amp = np.concatenate([[0.0], [MATERIALS[names[i]][3] for i in mat]]).astype(np.float32)
    speck_share = np.concatenate([[0.0], [MATERIALS[names[i]][4] for i in mat]]).astype(np.float32)
    noise = np.frombuffer(rng.bytes(h * w * 4), np.uint8).reshape(h, w, 4).astype(np.float32)
    noise -= 127.5
    noise *= np.float32(math.sqrt(12) / 256)
    grain = noise[..., 3]
    mottle = fbm(rng, h, w, max(3.0, rmin * 1.5), 3)
    theta = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bands = np.sin((xx * math.cos(theta) + yy * math.sin(theta)) * (2 * math.pi / max(3.0, rmin * 0.8)))
    specks = (grain > (1.7 - 3.4 * np.take(speck_share, rock_id))).astype(np.float32)  # uniform noise in [-1.7, 1.7]
    modulation = (1 + np.take(grain_amp, rock_id) * grain + np.take(mottle_amp, rock_id) * mottle
                  + np.take(band_amp, rock_id) * bands - 0.55 * specks)

    # -- light: a low sun, hard shadows, deep gaps -----------------------------------------------------------------
    az = rng.uniform(0, 2 * np.pi)
    el = math.radians(rng.uniform(10, 35))
    light = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)], np.float32)
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    lambert = np.clip((light[2] - gx * light[0] - gy * light[1]) / np.sqrt(gx * gx + gy * gy + 1), 0, 1)
    shadow = cv2.GaussianBlur(_cast_shadow(height, light, ref), (0, 0), max(0.5, ref * 0.002))
    ao_radius = max(2.0, rmax * 0.35)
    ao = np.clip((_blur_coarse(height, ao_radius) - height) * (1.0 / (ao_radius * 0.4)), 0, 1)
    ambient = rng.uniform(0.15, 0.35)
    direct = lambert * (1 - shadow * rng.uniform(0.85, 0.97))
    norm = 1 / (ambient + (1 - ambient) * light[2])
    # warm direct sun, a bluish sky in the shadows (BGR)
    sun = np.array([0.85, 0.95, 1.05], np.float32) ** rng.uniform(0.5, 1.5)
    sky = np.array([1.1, 1.0, 0.9], np.float32)
    shade = ((ambient * (1 - 0.85 * ao) * norm)[..., None] * sky + ((1 - ambient) * direct * norm)[..., None] * sun)
    factor = modulation[..., None] * shade
    lut = colours[:, ::-1].astype(np.float32)
    sub = (np.take(lut, rock_id[::4, ::4], axis=0) * factor[::4, ::4]).mean()
    lut *= rng.uniform(80, 150) / max(float(sub), 1.0)
    img = np.take(lut, rock_id, axis=0)
    img *= factor

    # -- a scale object lying on the pile (not rock) ---------------------------------------------------------------
    scale_object = ""
    if rng.uniform() < 0.3:
        scale_object = str(rng.choice(SCALE_OBJECTS))
        covered = _scale_object(rng, img, scale_object, light, ref)
        mask[covered] = 0
        rock_id[covered] = 0

    # -- dust and camera -------------------------------------------------------------------------------------------
    dust = np.clip(rng.uniform(0.0, 0.25) * (0.6 + 0.4 * fbm(rng, h, w, ref * 0.5, 2)), 0, 0.5)[..., None]
    dust_rgb = np.asarray(rng.uniform(150, 200) * np.array([0.92, 1.0, 1.08]), np.float32)  # BGR: warm grey
    img = img * (1 - dust) + dust_rgb * dust
    img += (noise[..., :1] > 1.65).astype(np.float32) * rng.uniform(0, 60)  # dust specks
    u2 = rng.uniform() if camera_effects else 1.0
    if u2 < 0.4:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.0) * max(1.0, ref / 256))
    elif u2 < 0.5:
        img = _motion_blur(rng, img, max(3, int(ref * rng.uniform(0.008, 0.02))))
    img += noise[..., :3] * np.float32(rng.uniform(0.5, 3.5))
    bgr = np.clip(img, 0, 255).astype(np.uint8)
    if instances is not None:
        instances.append(instance_ids(rock_id))
    info = SceneInfo(ground="pile", regime=f"pile{'+' + scale_object if scale_object else ''}", rocks=n,
                     light_azimuth_deg=math.degrees(az) % 360, light_elevation_deg=math.degrees(el))
    return bgr, mask, info


def _place_faceted(rng: np.random.Generator, rock_id: np.ndarray, height: np.ndarray, k: int, x: float, y: float,
                   pts: np.ndarray, r: float, tall: float, base: float) -> None:
    """Z-buffer one crushed rock into the height field: a dome over its outline, cut by 4-8 random planes (flat
    facets with sharp edges), standing ``base`` above what lies under it."""
    m = int(rng.integers(4, 9))  # drawn before the window is known: the scene is the same whether the rock shows
    normals = rng.normal(0, 1, (m, 2))
    normals *= (rng.uniform(0.5, 1.3, m) / np.maximum(np.linalg.norm(normals, axis=1), 1e-6))[:, None]
    offsets = rng.uniform(0.75, 1.1, m)
    found = outline_distance(rock_id.shape, x, y, pts)
    if found is None:
        return
    sl, dist = found
    inside = dist > 0
    if not inside.any():
        return
    core = max(float(dist.max()), 1.0)
    t = np.minimum(dist * (1.0 / core), 1.0)
    dome = 1 - (1 - t) ** 2.2
    vv, uu = np.mgrid[sl].astype(np.float32)
    uu = (uu - x) / max(r, 1.0)
    vv = (vv - y) / max(r, 1.0)
    cut = np.min(offsets[:, None, None] - normals[:, 0, None, None] * uu - normals[:, 1, None, None] * vv, axis=0)
    shape = np.minimum(dome, np.maximum(cut, 0.0) + 0.15 * dome)
    under = float(height[sl][inside].max(initial=0.0))
    zbuffer(rock_id, height, sl, inside, under * 0.5 + base + shape.astype(np.float32) * tall, k)


def _scale_object(rng: np.random.Generator, img: np.ndarray, kind: str, light: np.ndarray, ref: float) -> np.ndarray:
    """Draw a square frame of bars or a ball onto ``img`` (lit by ``light``, with a shadow); returns where it covers."""
    h, w = img.shape[:2]
    covered = np.zeros((h, w), np.uint8)
    shadow = np.zeros((h, w), np.uint8)
    sx, sy = int(-light[0] / max(light[2], 0.2) * ref * 0.02), int(-light[1] / max(light[2], 0.2) * ref * 0.02)
    if kind == "frame":
        side = ref * rng.uniform(0.25, 0.5)
        cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
        a = rng.uniform(0, np.pi / 2)
        corners = np.array([[math.cos(a + q * np.pi / 2), math.sin(a + q * np.pi / 2)] for q in range(4)]) * side / math.sqrt(2)
        pts = np.round((corners + (cx, cy)) * 16).astype(np.int32)
        bar = max(1, int(round(ref * rng.uniform(0.008, 0.018))))
        cv2.polylines(covered, [pts], True, 1, bar, cv2.LINE_8, shift=4)
        cv2.polylines(shadow, [pts + np.array([sx * 16, sy * 16], np.int32)], True, 1, bar, cv2.LINE_8, shift=4)
        colour = np.array([rng.uniform(60, 120)] * 3, np.float32) * np.array(rng.choice([[1, 1, 1], [0.3, 0.6, 1.4]]),
                                                                              np.float32)  # steel, or orange paint
    else:
        radius = ref * rng.uniform(0.04, 0.09)
        cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
        cv2.circle(covered, (int(cx), int(cy)), int(radius), 1, -1)
        cv2.circle(shadow, (int(cx + sx * 2), int(cy + sy * 2)), int(radius), 1, -1)
        colour = np.array(rng.choice([[40, 120, 240], [230, 230, 230], [60, 200, 240]]), np.float32)  # BGR
    img[(shadow > 0) & (covered == 0)] *= 0.45
    yy, xx = np.nonzero(covered)
    if len(yy):
        # a matte object lit from the sun's side: brighter towards the light, a little noise
        lit = 0.55 + 0.45 * np.clip(((xx - xx.mean()) * light[0] + (yy - yy.mean()) * light[1]) /
                                    max(1.0, float(np.ptp(xx) + np.ptp(yy))) * 2 + 0.5, 0, 1)
        img[yy, xx] = colour[None, :] * lit[:, None].astype(np.float32)
    return covered.astype(bool)
