"""Two built-in styles of one network mixed with a weight.

A style of a conditional-norm network is a vector: Magenta's painting presets
are 100-number style vectors, Dumoulin's styles are weights over the network's
26 styles. Mixing two of them is mixing their vectors, ``(1 - share) * a +
share * b``, and binding the same network to the result: the network paints one
picture whose brush work is in between, which a pixel blend of two paintings
cannot give (it shows both pictures at once, half-transparent). Styles that are
networks of their own (ml5, pytorch/examples) have nothing to mix, and so are
refused with a message saying which styles can be mixed.

This module only does arithmetic on catalog records, so the bot and the CLI can
check a mix without importing torch; the Stylizer builds the network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from totoshka.engine.catalog import Catalog, Style
from totoshka.engine.errors import EngineError

# families whose styles are vectors bound to one shared network
MIXABLE_FAMILIES = frozenset({"magenta", "dumoulin"})


class MixError(EngineError):
    """Two styles that cannot be mixed, or a share outside 0..1."""

    code = "mix_refused"


@dataclass(frozen=True)
class StyleMix:
    """`first` and `second` (catalog style ids), `share` of the second in 0..1."""

    first: str
    second: str
    share: float = 0.5

    @property
    def key(self) -> str:
        """The network cache key: two mixes that paint alike share one network."""
        return f"mix:{self.first}+{self.second}@{self.share:.6f}"

    @property
    def label(self) -> str:
        """For file names: ``mosaic+candy-30`` is 30 % candy."""
        return f"{self.first}+{self.second}-{round(self.share * 100)}"


def mixable(catalog: Catalog, style: Style) -> bool:
    """Whether `style` is a vector of a shared network (so it mixes with its kin)."""
    family = catalog.model(style.model).family
    return family in MIXABLE_FAMILIES and style.vector is not None


def partners(catalog: Catalog, style_id: str, among: list[str] | None = None) -> list[str]:
    """The styles `style_id` mixes with (the same network), in catalog order; only
    those in `among` when given (the bot offers the styles it can paint)."""
    if style_id not in catalog:
        return []
    style = catalog.style(style_id)
    if not mixable(catalog, style):
        return []
    allowed = None if among is None else set(among)
    return [
        s.id
        for s in catalog.styles_of(style.model)
        if s.id != style.id and mixable(catalog, s) and (allowed is None or s.id in allowed)
    ]


def check_share(share: float) -> float:
    if not (isinstance(share, (int, float)) and math.isfinite(share) and 0.0 <= share <= 1.0):
        raise MixError("the mix must be between 0 and 1")
    return float(share)


def mixed_style(catalog: Catalog, mix: StyleMix) -> Style:
    """The first style's record with the mixed vector: what the family's loader binds."""
    share = check_share(mix.share)
    first, second = catalog.style(mix.first), catalog.style(mix.second)
    for style in (first, second):
        if not mixable(catalog, style):
            raise MixError(
                f"style {style.id!r} cannot be mixed: only Magenta painting presets and "
                "Dumoulin styles mix (the styles of one network)"
            )
    if first.model != second.model or first.vector is None or second.vector is None:
        raise MixError(
            f"styles {first.id!r} and {second.id!r} are of different networks "
            f"({first.model}, {second.model}): mix two styles of one network"
        )
    if len(first.vector) != len(second.vector):
        raise MixError(f"styles {first.id!r} and {second.id!r} have vectors of different sizes")
    vector = tuple(
        (1.0 - share) * a + share * b for a, b in zip(first.vector, second.vector, strict=True)
    )
    title = {
        lang: f"{first.title_in(lang)} + {second.title_in(lang)}"
        for lang in set(first.title) | set(second.title)
    }
    # the mix is computed, not read from a painting: no method or source to record
    return replace(
        first,
        vector=vector,
        title=title,
        vector_method=None,
        vector_source=None,
        vector_source_sha256=None,
    )


def mix_partners(catalog: Catalog, offered: list[str]) -> dict[str, list[str]]:
    """Each offered style's offered partners (the bot's "mix with…" buttons); styles
    with none are left out."""
    found = {sid: partners(catalog, sid, offered) for sid in offered}
    return {sid: ids for sid, ids in found.items() if ids}
