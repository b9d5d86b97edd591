"""Turning templates into user messages: slots, verb agreement, casing, register and typos.

A message is built as pieces that know whether they are a fact value; casing changes and typos
only ever touch the literal pieces, so every name and value survives exactly as the facts say.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from memlora.data.policy import vowel_sound

_TOKEN = re.compile(r"\{(\w+)\}|\[([^\]]+)\]")
PRONOUNS = {"f": "she", "m": "he", "n": "they"}
POSSESSIVES = {"f": "her", "m": "his", "n": "their"}


@dataclass(frozen=True)
class Piece:
    text: str
    value: bool = False


def fill(template: str, slots: dict[str, str | list[Piece]], gender: str = "n", plural: bool = False) -> list[Piece]:
    """Pieces of one template. `[sing|plur]` agrees with the subject; `[she|he|they]` follows `gender`
    (and makes what follows plural when it resolves to "they")."""
    pieces: list[Piece] = []
    position = 0
    for match in _TOKEN.finditer(template):
        if match.start() > position:
            pieces.append(Piece(template[position:match.start()]))
        slot, choice = match.group(1), match.group(2)
        if slot is not None:
            value = slots[slot]
            if isinstance(value, list):
                pieces.extend(value)
            elif slot in ("rw", "species", "event_noun"):
                pieces.append(Piece(value))  # common nouns: casing may change them
            else:
                pieces.append(Piece(value, value=True))
        else:
            options = choice.split("|")
            if len(options) == 3:
                index = "fmn".index(gender)
                plural = plural or index == 2
                pieces.append(Piece(options[index]))
            else:
                pieces.append(Piece(options[1] if plural else options[0]))
        position = match.end()
    if position < len(template):
        pieces.append(Piece(template[position:]))
    for i in range(len(pieces) - 1):  # "a {role}" before a vowel: "an"
        text, following = pieces[i].text, pieces[i + 1].text
        if re.search(r"(^|\s)[Aa] $", text) and following and vowel_sound(following):
            pieces[i] = Piece(text[:-1] + "n ", pieces[i].value)
    return pieces


def finish(pieces: list[Piece], *, casual: bool) -> str:
    """Joins pieces, capitalising sentence starts (or lower-casing everything literal when casual)."""
    out: list[str] = []
    at_start = True
    for piece in pieces:
        text = piece.text
        if not text:
            continue
        if not piece.value:
            if casual:
                text = text.lower()
            elif at_start:
                stripped = text.lstrip()
                if stripped:
                    lead = len(text) - len(stripped)
                    text = text[:lead] + stripped[0].upper() + stripped[1:]
        out.append(text)
        tail = text.rstrip()
        if tail:
            at_start = tail[-1] in ".!?"
    return "".join(out).strip()


def add_typo(pieces: list[Piece], rng: random.Random) -> tuple[list[Piece], bool]:
    """One slip of the keyboard in a literal word of four letters or more, if there is one: two
    inner letters swapped, one dropped, or one doubled."""
    candidates = [
        (i, m.start(), m.end())
        for i, piece in enumerate(pieces)
        if not piece.value
        for m in re.finditer(r"[A-Za-z]{4,}", piece.text)
    ]
    if not candidates:
        return pieces, False
    index, start, end = rng.choice(candidates)
    text = pieces[index].text
    word = text[start:end]
    k = rng.randrange(1, len(word) - 2)
    slip = rng.random()
    if slip < 0.5:
        word = word[:k] + word[k + 1] + word[k] + word[k + 2:]
    elif slip < 0.75:
        word = word[:k] + word[k + 1:]
    else:
        word = word[:k] + word[k] + word[k:]
    pieces = list(pieces)
    pieces[index] = Piece(text[:start] + word + text[end:])
    return pieces, True
