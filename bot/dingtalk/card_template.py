"""The card template description (``card_template.json``): variables and buttons."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

PATH = Path(__file__).with_name("card_template.json")


@dataclass(frozen=True)
class Button:
    id: str
    text: str
    params: dict[str, Any]


@dataclass(frozen=True)
class CardTemplate:
    name: str
    variables: tuple[str, ...]
    buttons: tuple[Button, ...]

    def button(self, action: str) -> Button | None:
        return next((b for b in self.buttons if b.params.get("action") == action), None)


@lru_cache(maxsize=1)
def load(path: str = str(PATH)) -> CardTemplate:
    d = json.loads(Path(path).read_text(encoding="utf-8"))
    return CardTemplate(
        name=d["name"],
        variables=tuple(v["name"] for v in d["variables"]),
        buttons=tuple(Button(b["id"], b["text"], dict(b["params"])) for b in d["buttons"]),
    )
