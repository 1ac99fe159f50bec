"""The job handler paints through the engine (`Engine.paint`, `Engine.style_vector`)
when its stylizer factory is the engine's own, and through the factory's Stylizer
otherwise (the tests' shared one): no torch, no network, no bot needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from totoshka.bot.job_handler import EnginePainter, JobHandler, engine_of
from totoshka.engine.factory import open_engine
from totoshka.engine.settings import EngineSettings


class _Ctx:
    async def run_blocking(self, fn: Any, *args: Any) -> Any:
        return fn(*args)


def _engine(tmp_path: Path) -> Any:
    return open_engine(EngineSettings(cache_dir=tmp_path / "c", data_dir=tmp_path / "d"))


def test_the_engine_of_its_stylizer_method(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    assert engine_of(engine.stylizer) is engine
    assert engine_of(lambda: None) is None
    assert engine_of(object) is None


async def test_painter_is_the_engine_without_building_a_stylizer(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    handler = JobHandler(None, engine.stylizer, None)  # type: ignore[arg-type]
    painter = await handler.painter(_Ctx())
    assert isinstance(painter, EnginePainter)
    assert painter.catalog is engine.catalog
    assert painter.stylize == engine.paint and painter.style_vector == engine.style_vector
    assert engine._stylizer is None  # photos need no Stylizer (torch) unless one falls back


async def test_any_other_factory_paints_with_its_stylizer(tmp_path: Path) -> None:
    made: list[object] = []

    def factory() -> object:
        made.append(object())
        return made[-1]

    handler = JobHandler(None, factory, None)  # type: ignore[arg-type]
    assert await handler.painter(_Ctx()) is made[0]
    engine = _engine(tmp_path)
    explicit = JobHandler(None, factory, None, engine=engine)  # type: ignore[arg-type]
    assert isinstance(await explicit.painter(_Ctx()), EnginePainter)
