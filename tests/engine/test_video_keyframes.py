"""The cheap consistency methods: `fastflow` (every frame painted, half-size flow,
trust from the input's colours) and `keyframes` (every other frame carried along
the flow). Painters here are fakes: these are properties of the blend, not of a
style network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from video_clips import pan_and_zoom, read_frames, write_clip

from totoshka.engine.video import METHODS, paint_clip, warping_error
from totoshka.engine.video.temporal import DEFAULT_ALPHA, KeyframeBlend, TrustField, warp


def shifted(n: int, step: int = 2, size: tuple[int, int] = (360, 160)) -> list[np.ndarray]:
    """A real photo's texture moving ``step`` px to the left per frame (new content
    enters at the right edge)."""
    base = next(pan_and_zoom(1, size))
    width = size[0] - step * n
    return [np.ascontiguousarray(base[:, step * i : step * i + width]) for i in range(n)]


def noisy_painter(seed: int = 0):  # type: ignore[no-untyped-def]
    """A 'style' that flickers as a network does: the inverted frame plus fresh noise."""
    rng = np.random.default_rng(seed)

    def paint(frames: list[np.ndarray]) -> list[np.ndarray]:
        return [
            np.clip(255.0 - f + rng.normal(0, 25, f.shape), 0, 255).astype(np.uint8) for f in frames
        ]

    return paint


def test_trust_field_upsamples_the_flow_and_scores_pixels() -> None:
    frames = shifted(2, step=4)
    field = TrustField()
    assert field.step(frames[0]) is None
    later = frames[1].copy()
    later[30:50, 40:70] = np.clip(later[30:50, 40:70].astype(int) + 90, 0, 255)  # a light on
    step = field.step(later)
    assert step is not None
    flow, trust = step
    assert flow.shape[:2] == trust.shape == later.shape[:2]  # back at the frame's size
    assert np.median(flow[..., 0]) == pytest.approx(4, abs=0.7)  # in full-size pixels
    assert trust.min() >= 0.0 and trust.max() <= 1.0
    assert trust[35:45, 48:62].mean() < 0.2  # the colour changed there: not trusted
    assert trust[60:90, 90:130].mean() > 0.8  # plain motion: trusted
    assert trust[:, -3:].mean() < 0.2  # content entering at the right edge


def test_keyframes_paint_every_other_frame_and_carry_the_rest() -> None:
    frames = shifted(7)
    paint = noisy_painter()
    blend = KeyframeBlend(every=2)
    wanted = [blend.wants(f) for f in frames]
    assert wanted == [True, False, True, False, True, False, True]
    assert blend.painted == 4
    outs: list[np.ndarray] = []
    for frame, want in zip(frames, wanted, strict=True):
        outs.append(blend(frame, paint([frame])[0] if want else None))
    # a carried frame is the previous output moved along the flow, not repainted
    for i in (1, 3, 5):
        field = TrustField()
        field.step(frames[i - 1])
        step = field.step(frames[i])
        assert step is not None
        moved = warp(outs[i - 1], step[0], 3)  # bicubic, as the method warps
        inner = (slice(8, -8), slice(12, -12))
        diff = np.abs(outs[i][inner].astype(int) - moved[inner].astype(int))
        assert diff.mean() < 3.0  # a new painting would differ by its noise, σ = 25


def test_a_keyframe_blends_the_carried_output_with_its_painting() -> None:
    """Where the flow is trusted: O = P + α·(W − P), α = DEFAULT_ALPHA."""
    frames = shifted(2)
    first = np.full_like(frames[0], 200)
    second = np.full_like(frames[1], 40)
    blend = KeyframeBlend(every=1)
    assert blend.wants(frames[0]) and blend.wants(frames[1])
    blend(frames[0], first)
    out = blend(frames[1], second)
    inner = out[10:-10, 10:-10].astype(float)
    expected = 40 + DEFAULT_ALPHA * (200 - 40)
    assert np.median(inner) == pytest.approx(expected, abs=2)


def test_a_cut_is_painted_at_once_and_not_blended() -> None:
    frames = shifted(3)
    cut = np.ascontiguousarray(255 - frames[2][::-1])  # another scene altogether
    blend = KeyframeBlend(every=4)
    assert blend.wants(frames[0]) and not blend.wants(frames[1])
    assert blend.wants(cut)  # most of it untrusted: repainted before its turn
    blend(frames[0], np.zeros_like(frames[0]))
    blend(frames[1], None)
    painted = np.full_like(cut, 123)
    out = blend(cut, painted)
    assert np.abs(out.astype(int) - 123).mean() < 5  # the new painting, not the old scene


def test_stale_pixels_are_painted_afresh_at_the_next_keyframe() -> None:
    """Content entering at the edge is carried (smeared) for one frame at most; the
    next keyframe paints it, it does not blend the smear in."""
    frames = shifted(3, step=4)
    blend = KeyframeBlend(every=2)
    wanted = [blend.wants(f) for f in frames]
    assert wanted == [True, False, True]
    blend(frames[0], np.zeros_like(frames[0]))
    blend(frames[1], None)
    out = blend(frames[2], np.full_like(frames[2], 250))
    assert out[:, -4:].astype(float).mean() > 240  # entered in frames 1 and 2: painted
    assert out[20:-20, 20:60].astype(float).mean() < 0.5 * 250  # carried: mostly kept


def test_the_first_frame_must_be_painted() -> None:
    blend = KeyframeBlend()
    frame = shifted(1)[0]
    assert blend.wants(frame)
    with pytest.raises(ValueError):
        blend(frame, None)


@pytest.mark.parametrize("method", ["fastflow", "keyframes"])
def test_clips_flicker_less_and_keyframes_paint_fewer_frames(tmp_path: Path, method: str) -> None:
    assert method in METHODS
    src = write_clip(tmp_path / "pan.mp4", pan_and_zoom(16, (160, 96)), 12)
    inputs = read_frames(src)
    calls: list[int] = []
    base = noisy_painter(1)

    def painter(frames: list[np.ndarray]) -> list[np.ndarray]:
        calls.append(len(frames))
        return base(frames)

    errors = {}
    for name in ("none", method):
        calls.clear()
        outs: list[np.ndarray] = []
        result = paint_clip(
            None,  # type: ignore[arg-type]  # the painter replaces the stylizer
            src,
            tmp_path / f"{name}.mp4",
            "wave",
            method=name,
            painter=painter,
            on_frame=lambda frame, out, o=outs: o.append(out),
        )
        assert result.frames == len(outs) == 16
        errors[name] = warping_error(inputs, outs)
        if name == "none" or method == "fastflow":
            assert sum(calls) == 16
        else:
            assert 8 <= sum(calls) < 16
    assert errors[method] < 0.3 * errors["none"], errors
