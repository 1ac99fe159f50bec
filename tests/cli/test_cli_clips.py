"""`totoshka stylize` on clips, for real: a GIF and an MP4 with sound, real styles."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from typer.testing import CliRunner
from video_clips import moving_scene, pan_and_zoom, write_clip

from totoshka.cli.main import app

runner = CliRunner()


@pytest.fixture
def eager_env(mirror_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TOTOSHKA_BACKEND", "eager")  # no calibration in a fresh cache
    return mirror_env


def test_clip_gets_its_style_in_its_name(eager_env: Path, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", pan_and_zoom(12, (96, 64)), 12, audio=True)
    result = runner.invoke(
        app, ["stylize", str(clip), "--style", "wave", "--consistency", "flow", "--strength", "0.8"]
    )
    assert result.exit_code == 0, (result.stdout, result.stderr)
    out = tmp_path / "clip.wave.mp4"
    assert result.stdout.strip() == str(out)
    assert "100%" in result.stderr  # the progress bar got to the end
    with av.open(str(out)) as c:
        assert c.streams.video[0].frames == 12 and c.streams.audio


def test_gif_stays_a_gif_unless_asked(eager_env: Path, tmp_path: Path) -> None:
    gif = write_clip(tmp_path / "anim.gif", moving_scene(6), 6)
    assert runner.invoke(app, ["stylize", str(gif), "-s", "udnie"]).exit_code == 0
    assert (tmp_path / "anim.udnie.gif").read_bytes()[:6] == b"GIF89a"
    result = runner.invoke(app, ["stylize", str(gif), "-s", "udnie", "--format", "mp4"])
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "anim.udnie.mp4").exists()


def test_clip_errors_are_one_line(eager_env: Path, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", moving_scene(4), 12)
    bad = runner.invoke(app, ["stylize", str(clip), "-s", "wave", "--consistency", "magic"])
    assert bad.exit_code == 2 and "--consistency must be one of" in bad.stderr
    photo_format = runner.invoke(app, ["stylize", str(clip), "-s", "wave", "--format", "png"])
    assert photo_format.exit_code == 2 and "clips are written as mp4 or gif" in photo_format.stderr
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"not a clip at all")
    broken = runner.invoke(app, ["stylize", str(fake), "-s", "wave"])
    assert broken.exit_code == 1 and "not a clip FFmpeg can read" in broken.stderr
