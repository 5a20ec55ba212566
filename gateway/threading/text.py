"""Text of an inbound message as the reference matcher needs it: subject and HTML body.

Pure functions, no I/O. Each one accepts whatever a hostile or broken mailer sends and
never raises on content: bad encodings come back with U+FFFD, broken HTML comes back as
the best text we can get cheaply, in time linear in the input.
"""

from __future__ import annotations

import base64
import binascii
import html
import re

# --- RFC 2047 subjects -------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]++)\?([bBqQ])\?([^?]*+)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/]*=*")

_CHARSET_ALIASES = {
    # What mailers say versus what they mean (as the WHATWG Encoding Standard reads them).
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "iso-8859-9": "cp1254",
    "tis-620": "cp874",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
}


def decode_subject(raw_header_value: str) -> str:
    """A subject header's text: unfolded, RFC 2047 encoded-words decoded, on one line.

    Adjacent encoded-words in one charset are joined as bytes before decoding, so a
    character split across two words (as some mailers do with UTF-8) comes out whole.
    Whitespace between encoded-words is dropped, as RFC 2047 says. An unknown charset
    decodes as UTF-8; undecodable bytes become U+FFFD; an encoded-word whose base64 is
    not base64 is kept as literal text. Line breaks and other control characters become
    spaces; leading and trailing space is stripped. Never raises.
    """
    text = _undo_surrogates(_FOLD.sub("", raw_header_value))
    pieces: list[tuple[str | None, str | bytearray]] = []
    pos = 0
    for m in _ENCODED_WORD.finditer(text):
        decoded = _word_bytes(m.group(2), m.group(3))
        if decoded is None:
            continue  # left in place: becomes part of the literal text that follows
        between = text[pos : m.start()]
        if between and not (between.isspace() and pieces and pieces[-1][0] is not None):
            pieces.append((None, between))
        charset = m.group(1).split("*", 1)[0].lower()
        previous = pieces[-1][1] if pieces and pieces[-1][0] == charset else None
        if isinstance(previous, bytearray):
            previous += decoded
        else:
            pieces.append((charset, bytearray(decoded)))
        pos = m.end()
    pieces.append((None, text[pos:]))
    joined = "".join(p if isinstance(p, str) else _decode_bytes(bytes(p), c) for c, p in pieces)
    return _CONTROLS.sub(" ", joined).strip()


def _undo_surrogates(text: str) -> str:
    """Raw 8-bit header bytes that the email package smuggled in as surrogates, as UTF-8."""
    if not _SURROGATE.search(text):
        return text
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


def _word_bytes(encoding: str, encoded: str) -> bytes | None:
    """The bytes of one encoded-word's text, or ``None`` when it cannot be base64."""
    if encoding in "qQ":
        return binascii.a2b_qp(encoded.encode("utf-8"), header=True)
    if not _BASE64_TEXT.fullmatch(encoded):
        return None
    data = encoded.rstrip("=")
    if len(data) % 4 == 1:
        data = data[:-1]  # a lone trailing character carries less than one byte
    try:
        return base64.b64decode(data + "=" * (-len(data) % 4))
    except binascii.Error:  # pragma: no cover - the checks above leave valid base64
        return None


def _decode_bytes(data: bytes, charset: str | None) -> str:
    name = _CHARSET_ALIASES.get(charset or "utf-8", charset or "utf-8")
    try:
        return data.decode(name, "replace")
    except (LookupError, UnicodeError, ValueError, TypeError):
        return data.decode("utf-8", "replace")


# --- Subject decorations ----------------------------------------------------------------

_REPLY_WORDS = (
    "re|aw|fw|fwd|wg|tr|sv|vs|vb|antw|antwort|doorst|r|rif|rv|res|enc|odp|pd|ynt|ilt|vl|"
    "отв|ответ|пересл|ΑΠ|ΣΧΕΤ|ΠΡΘ|השב|תשובה|הועבר|رد|"
    "回复|回覆|答复|答覆|转发|轉寄|转寄|返信|転送|회신|답장|전달"
)
_DECORATION = re.compile(
    # Possessive quantifiers (*+, ++): no backtracking, so a long run of spaces stays linear.
    rf"""\s*+(?:
        (?:{_REPLY_WORDS})(?:\s*+(?:\[\d{{1,4}}\]|\(\d{{1,4}}\)|\^\d{{1,4}}))?\s*+[:：]
      | \[\s*+(?:ext|external|external\s++(?:e-?mail|sender|message)|caution|warning|spam|
                suspected\s++spam|suspicious)\s*+\]
      | \*++\s*+(?:external|spam)\s*+\*++
      | \(\s*+external\s*+\)
    )""",
    re.IGNORECASE | re.VERBOSE,
)


def strip_subject_decorations(subject: str) -> str:
    """The subject without any number of leading reply/forward markers and external tags.

    Removes ``RE:``, ``Re[2]:``, ``AW:``, ``FW:``, ``Fwd:``, ``WG:``, ``TR:``, ``SV:``,
    ``VS:``, ``Antw:``, ``R:``, ``RIF:``, ``回复:``, ``答复:``, ``転送:`` and their kin in
    other languages, ``[EXTERNAL]``, ``*EXTERNAL*``, ``[SPAM]``..., in any order and case,
    with ASCII or full-width colons. Only leading ones go; the rest is kept as is.
    """
    pos = 0
    while m := _DECORATION.match(subject, pos):
        pos = m.end()
    return subject[pos:].strip()


# --- HTML -------------------------------------------------------------------------------

_INVISIBLE = re.compile(
    r"<!--.*?(?:-->|\Z)"
    r"|<script\b.*?(?:</script\s*>|\Z)"
    r"|<style\b.*?(?:</style\s*>|\Z)"
    r"|<title\b.*?(?:</title\s*>|\Z)",
    re.IGNORECASE | re.DOTALL,
)
_BLOCK_TAGS = (
    "p div br hr tr li ul ol dl dt dd h1 h2 h3 h4 h5 h6 table thead tbody tfoot blockquote pre"
    " section article header footer nav aside main address center form fieldset figure"
)
_SPACED_TAGS = "td th img input button select textarea"
_TAG_TEXT = {
    **{name: "\n" for name in _BLOCK_TAGS.split()},
    **{name: " " for name in _SPACED_TAGS.split()},
}
"""What a tag leaves in the text; any other tag (inline ones) leaves nothing."""
_TAG = re.compile(r"<(?:/?([A-Za-z][A-Za-z0-9]*)|[!?])[^>]*(?:>|\Z)")
_SPACES = re.compile(r"[^\S\n]{2,}|[^\S\n ]")
_LINE_EDGES = re.compile(r" ?\n ?")
_BLANK_LINES = re.compile(r"\n{3,}")


def html_to_text(html_text: str, max_chars: int) -> str:
    """The visible text of an HTML body, at most ``max_chars`` characters, for searching.

    Cheap and forgiving rather than faithful: comments, ``script``, ``style`` and
    ``title`` are dropped; block-level tags become line breaks, cells and images spaces,
    inline tags nothing (so ``<b>REF:</b>00012345...`` stays one word); entities are
    unescaped. Unclosed tags and comments run to the end of the input, as in browsers.
    Each step is one pass whose pattern, once it starts matching, always succeeds (a tag
    or comment with no end runs to the end), so nothing is scanned twice and the time is
    linear in the input, also for a megabyte on one line.
    """
    if max_chars <= 0:
        return ""
    text = _INVISIBLE.sub(" ", html_text)
    parts = _TAG.split(" ".join(text.split()))
    parts[1::2] = [_TAG_TEXT.get((name or "").lower(), "") for name in parts[1::2]]
    text = "".join(parts)
    text = _SPACES.sub(" ", html.unescape(text))
    text = _BLANK_LINES.sub("\n\n", _LINE_EDGES.sub("\n", text))
    return text.strip()[:max_chars]

