"""The UTF-8 sequences of Autobahn section 6, written out by hand.

After Markus Kuhn's "UTF-8 decoder capability and stress test", as Autobahn
uses it. Each entry is ``(case id, bytes, valid)``; validity is that of
RFC 3629 (no surrogates, nothing above U+10FFFF, no overlong forms, no 5- or
6-byte forms). Noncharacters (U+FFFE, U+FDD0, ...) are valid UTF-8.
"""

from __future__ import annotations

__all__ = ["INVALID", "KOSME", "SEQUENCES", "VALID"]

#: "κόσμε" (Greek "cosmos"): 2-, 3-, 2-, 2- and 2-byte characters.
KOSME = bytes.fromhex("ceba e1bdb9 cf83 cebc ceb5")
_KOSME_BOUNDARIES = {0, 2, 5, 7, 9, 11}


def _h(text: str) -> bytes:
    return bytes.fromhex(text)


def _noncharacters() -> list[tuple[str, bytes, bool]]:
    # 6.22: U+xFFFE and U+xFFFF of every plane, and U+FDD0..U+FDEF.
    cases = []
    for plane in range(17):
        for low in (0xFFFE, 0xFFFF):
            cp = plane << 16 | low
            cases.append((f"6.22-U+{cp:04X}", chr(cp).encode("utf-8"), True))
    cases += [("6.22-U+FDD0", _h("efb790"), True), ("6.22-U+FDEF", _h("efb7af"), True)]
    return cases


VALID: list[tuple[str, bytes, bool]] = [
    ("6.1-empty", b"", True),
    ("6.2-hello", "Hello-µ@ßöäüàá-UTF-8!!".encode(), True),
    ("6.5.1-kosme", KOSME, True),
    ("6.5.2-U+10FFFF", _h("f48fbfbf"), True),
    ("6.5.3-mixed", "Ñandú 漢字 😀 κόσμε".encode(), True),
    # 6.7: first possible sequence of each length.
    ("6.7.1-U+0000", _h("00"), True),
    ("6.7.2-U+0080", _h("c280"), True),
    ("6.7.3-U+0800", _h("e0a080"), True),
    ("6.7.4-U+10000", _h("f0908080"), True),
    # 6.9: last possible sequence of each length (the valid ones).
    ("6.9.1-U+007F", _h("7f"), True),
    ("6.9.2-U+07FF", _h("dfbf"), True),
    ("6.9.3-U+FFFF", _h("efbfbf"), True),
    # 6.11: other boundary conditions.
    ("6.11.1-U+D7FF", _h("ed9fbf"), True),
    ("6.11.2-U+E000", _h("ee8080"), True),
    ("6.11.3-U+FFFD", _h("efbfbd"), True),
    ("6.11.4-U+10FFFF", _h("f48fbfbf"), True),
    *_noncharacters(),
    # 6.23: the BOM and the replacement character are ordinary characters.
    ("6.23.1-U+FFFD", _h("efbfbd"), True),
    ("6.23.2-U+FEFF", _h("efbbbf"), True),
    ("6.23.3-U+FEFF-text", _h("efbbbf") + b"abc", True),
    ("6.23.4-U+FFFD-x2", _h("efbfbd efbfbd"), True),
    ("6.23.5-U+065E", _h("d99e"), True),
    ("6.23.6-U+1D11E", _h("f09d849e"), True),
    ("6.23.7-U+2029", _h("e280a9"), True),
]

_LONELY_STARTS = [
    ("6.13.1-2-byte-starts", range(0xC0, 0xE0)),
    ("6.13.2-3-byte-starts", range(0xE0, 0xF0)),
    ("6.13.3-4-byte-starts", range(0xF0, 0xF8)),
    ("6.13.4-5-byte-starts", range(0xF8, 0xFC)),
    ("6.13.5-6-byte-starts", range(0xFC, 0xFE)),
]
_MISSING_LAST = [
    "c0", "e080", "f08080", "f8808080", "fc80808080",
    "df", "efbf", "f7bfbf", "fbbfbfbf", "fdbfbfbfbf",
]

INVALID: list[tuple[str, bytes, bool]] = [
    ("6.3.1-kosme-surrogate", KOSME + _h("eda080") + b"edited", False),
    # 6.8: first possible 5- and 6-byte sequences (not UTF-8 since RFC 3629).
    ("6.8.1-5-bytes", _h("f888808080"), False),
    ("6.8.2-6-bytes", _h("fc8480808080"), False),
    # 6.9/6.10: last possible 4-, 5-, 6-byte sequences beyond U+10FFFF.
    ("6.9.4-U+1FFFFF", _h("f7bfbfbf"), False),
    ("6.10.1-5-bytes", _h("fbbfbfbfbf"), False),
    ("6.10.2-6-bytes", _h("fdbfbfbfbfbf"), False),
    ("6.11.5-U+110000", _h("f4908080"), False),
    # 6.12: unexpected continuation bytes.
    ("6.12.1-80", _h("80"), False),
    ("6.12.2-bf", _h("bf"), False),
    ("6.12.3-80bf", _h("80bf"), False),
    ("6.12.4-80bf80", _h("80bf80"), False),
    ("6.12.5-80bf80bf", _h("80bf80bf"), False),
    ("6.12.6-5-continuations", _h("80bf80bf80"), False),
    ("6.12.7-6-continuations", _h("80bf80bf80bf"), False),
    ("6.12.8-all-64", bytes(range(0x80, 0xC0)), False),
    # 6.13: lonely start bytes, each followed by a space.
    *[(name, b"".join(bytes([b, 0x20]) for b in starts), False)
      for name, starts in _LONELY_STARTS],
    *[(f"6.13-{b:02x}-space", bytes([b, 0x20]), False) for b in range(0xC0, 0xFE)],
    # 6.14: sequences with the last continuation byte missing.
    *[(f"6.14-{hexa}", _h(hexa), False) for hexa in _MISSING_LAST],
    # 6.15: all of 6.14 concatenated.
    ("6.15-concatenated", _h("".join(_MISSING_LAST)), False),
    # 6.16: bytes that can never appear.
    ("6.16.1-fe", _h("fe"), False),
    ("6.16.2-ff", _h("ff"), False),
    ("6.16.3-fefeffff", _h("fefeffff"), False),
    # 6.17: overlong ASCII "/".
    ("6.17.1-c0af", _h("c0af"), False),
    ("6.17.2-e080af", _h("e080af"), False),
    ("6.17.3-f08080af", _h("f08080af"), False),
    ("6.17.4-f8808080af", _h("f8808080af"), False),
    ("6.17.5-fc80808080af", _h("fc80808080af"), False),
    # 6.18: maximum overlong sequences.
    ("6.18.1-c1bf", _h("c1bf"), False),
    ("6.18.2-e09fbf", _h("e09fbf"), False),
    ("6.18.3-f08fbfbf", _h("f08fbfbf"), False),
    ("6.18.4-f887bfbfbf", _h("f887bfbfbf"), False),
    ("6.18.5-fc83bfbfbfbf", _h("fc83bfbfbfbf"), False),
    # 6.19: overlong NUL.
    ("6.19.1-c080", _h("c080"), False),
    ("6.19.2-e08080", _h("e08080"), False),
    ("6.19.3-f0808080", _h("f0808080"), False),
    ("6.19.4-f880808080", _h("f880808080"), False),
    ("6.19.5-fc8080808080", _h("fc8080808080"), False),
    # 6.20: single UTF-16 surrogates.
    *[(f"6.20-{hexa}", _h(hexa), False)
      for hexa in ["eda080", "edadbf", "edae80", "edafbf", "edb080", "edbe80", "edbfbf"]],
    # 6.21: paired UTF-16 surrogates (still not UTF-8).
    *[(f"6.21-{hi}{lo}", _h(hi + lo), False)
      for hi in ["eda080", "edadbf", "edae80", "edafbf"] for lo in ["edb080", "edbfbf"]],
]

#: 6.6: every prefix of "κόσμε": valid exactly when it ends on a character boundary.
KOSME_PREFIXES: list[tuple[str, bytes, bool]] = [
    (f"6.6.{n}-kosme[:{n}]", KOSME[:n], n in _KOSME_BOUNDARIES) for n in range(1, 12)
]

SEQUENCES = VALID + INVALID + KOSME_PREFIXES
