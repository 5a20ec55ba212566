"""The lines mail programs write above a quoted or forwarded mail, in their common languages:
attribution lines ("On … wrote:", "Am … schrieb …:", "Le … a écrit :", mutt's
"* Name <address> [date]:"), Outlook's and Lotus Notes' header blocks ("From:/Sent:/To:/
Subject:" and their translations), separators ("-----Original Message-----", Outlook's line
of underscores) and forward openers ("---------- Forwarded message ---------", "Begin
forwarded message:"); and the one-line signatures of mobile mail apps."""

from __future__ import annotations

import re
from dataclasses import dataclass

_FROM = (
    "from|von|de|van|da|fra|från|od|lähettäjä|от|feladó|kimden|remitente|mittente|afzender|absender"
    "|expéditeur|差出人|发件人|寄件者|보낸 사람|보낸사람"
)
_DATE = (
    "sent|date|gesendet|datum|envoyé|enviado|enviada|fecha|inviato|data|verzonden|sendt|skickat"
    "|wysłano|lähetetty|отправлено|дата|elküldve|gönderildi|tarih|送信日時|日付|发送时间|日期|發送時間"
    "|날짜|보낸 날짜|sent at|gesendet am|enviado el"
)
_TO = (
    "to|an|à|a|para|aan|til|till|do|vastaanottaja|кому|címzett|kime|宛先|收件人|받는 사람|받는사람"
    "|destinatario|envoyé à"
)
_CC = "cc|kopie|copie à|bcc|kopia|kopio|копия|másolat|bilgi"
_SUBJECT = (
    "subject|betreff|objet|asunto|oggetto|onderwerp|emne|ämne|temat|aihe|тема|tárgy|konu|件名|主题|主旨"
    "|제목|assunto|sujet"
)
_KEY = re.compile(
    rf"^[ \t]*[*_]{{0,2}}({_FROM}|{_DATE}|{_TO}|{_CC}|{_SUBJECT})[*_]{{0,2}}[ \t]*[:：][*_]{{0,2}}"
    r"(?:[ \t]+|$)(.*)",
    re.IGNORECASE,
)
_KIND = {
    **{k: "from" for k in _FROM.split("|")}, **{k: "date" for k in _DATE.split("|")},
    **{k: "to" for k in _TO.split("|")}, **{k: "cc" for k in _CC.split("|")},
    **{k: "subject" for k in _SUBJECT.split("|")},
}

_SEPARATOR = re.compile(
    r"^[ \t]*(?:-{2,}|_{2,}|={2,})[ \t]*("
    r"original message|original-nachricht|ursprüngliche nachricht|message d'origine|message original"
    r"|mensaje original|messaggio originale|oorspronkelijk bericht|origineel bericht|oprindelig meddelelse"
    r"|opprinnelig melding|ursprungligt meddelande|ursprungligt meddelande|alkuperäinen viesti"
    r"|wiadomość oryginalna|oryginalna wiadomość|mensagem original|исходное сообщение|eredeti üzenet"
    r"|原始邮件|原始郵件|元のメッセージ|原始信件"
    r"|(?P<fwd>forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado"
    r"|messaggio inoltrato|doorgestuurd bericht|videresendt meddelelse|vidarebefordrat meddelande"
    r"|mensagem encaminhada|wiadomość przekazana|пересылаемое сообщение|転送メッセージ|转发邮件))"
    r"[ \t]*(?:-{2,}|_{2,}|={2,})?[ \t]*$",
    re.IGNORECASE,
)
_RULE = re.compile(r"^[ \t]*(?:_{20,}|-{20,})[ \t]*$")
"""Outlook's line of underscores (or dashes) above its header block."""
_FORWARD_OPENER = re.compile(
    r"^[ \t]*(begin forwarded message|anfang der weitergeleiteten nachricht|début du message réexpédié"
    r"|inicio del mensaje reenviado|inizio messaggio inoltrato|begin doorgestuurd bericht"
    r"|início da mensagem reencaminhada|videresendt besked|vidarebefordrat mejl)[ \t]*[:：][ \t]*$",
    re.IGNORECASE,
)
_NOTES_SEPARATOR = re.compile(r"^[ \t]*-{3,}[ \t]*(.{1,200}?)[ \t]*-{3,}[ \t]*$")
"""Lotus/HCL Notes' "-----Customer Care <care@example> wrote: -----" and kin."""

_VERBS = (
    r"wrote|writes|has written|schrieb|hat geschrieben|a écrit|a ecrit|escribió|escribio|ha escrito"
    r"|ha scritto|scrisse|schreef|heeft geschreven|escreveu|skrev|skrifaði|napisał\(a\)|napisał|napisała"
    r"|napisal|kirjoitti|написал\(а\)|написал|написала|írta|yazdı|napsal|έγραψε|kirjutas|rašė|a scris"
    r"|wrote on|写道|寫道|のメッセージ|さんは書きました|작성"
)
_ATTRIBUTION_VERB = re.compile(rf"(?:^|[\s,>)\]])(?:{_VERBS})\b[^:：]{{0,120}}[:：]$|(?:{_VERBS})[:：]$",
                               re.IGNORECASE)
_DATE_OR_ADDRESS = re.compile(
    r"@|\d{1,2}[:.h]\d{2}\b|\b\d{4}-\d{1,2}-\d{1,2}\b|\b\d{1,2}[./]\d{1,2}[./]\d{2,4}\b|\b(?:19|20)\d{2}\b"
)
_ENDS_WITH_COLON = re.compile(r"[:：]\s*$")

MOBILE_SIGNATURE = re.compile(
    r"^[ \t]*(?:sent from my [\w\- ]{2,40}|sent from (?:mail|outlook) for (?:windows|ios|android|mac)\w*"
    r"|get outlook for (?:ios|android)|sent from outlook(?: for \w+)?|sent from yahoo mail.{0,40}"
    r"|von meinem [\w\- ]{2,40} gesendet|gesendet von meinem [\w\- ]{2,40}|gesendet mit der .{2,40}"
    r"|envoyé de mon [\w\- ]{2,40}|envoyé depuis mon [\w\- ]{2,40}|enviado desde mi [\w\- ]{2,40}"
    r"|inviato da(?:l mio)? [\w\- ]{2,40}|verzonden (?:vanaf|met) mijn [\w\- ]{2,40}"
    r"|skickat från min [\w\- ]{2,40}|sendt fra min [\w\- ]{2,40}|wysłane z mojego [\w\- ]{2,40}"
    r"|enviado do meu [\w\- ]{2,40})[ \t.]*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class HeaderField:
    kind: str
    """"from", "date", "to", "cc" or "subject"."""
    value: str


def header_field(line: str) -> HeaderField | None:
    """``line`` as one field of a quoted header block ("From: …", "Gesendet: …", "*Objet :* …")."""
    found = _KEY.match(line)
    if found is None:
        return None
    return HeaderField(_KIND[found.group(1).lower()], found.group(2).strip(" *_\t"))


def separator(line: str) -> str | None:
    """"forward" or "reply" for a line that opens a quoted mail on its own (a separator, a
    forward opener, Notes' dashed attribution), else None. Outlook's bare rule is "rule": it
    counts only above a header block."""
    if len(line) > 300:
        return None
    found = _SEPARATOR.match(line)
    if found is not None:
        return "forward" if found.group("fwd") else "reply"
    if _FORWARD_OPENER.match(line):
        return "forward"
    if _RULE.match(line):
        return "rule"
    notes = _NOTES_SEPARATOR.match(line)
    if notes is not None and _ATTRIBUTION_VERB.search(notes.group(1).rstrip() + (
            "" if _ENDS_WITH_COLON.search(notes.group(1)) else ":")):
        return "reply"
    return None


def is_attribution(text: str, quote_follows: bool) -> bool:
    """Whether ``text`` (a line, or up to three joined lines) introduces a quoted mail: it
    ends with a colon and names the writer with a verb of writing in one of the common
    languages, or (only right above a quoted block) carries an address or a date, as mutt's
    "* Name <address> [date]:" and custom attributions do."""
    text = text.strip()
    if len(text) > 400 or not _ENDS_WITH_COLON.search(text):
        return False
    if _ATTRIBUTION_VERB.search(text):
        return True
    return quote_follows and bool(_DATE_OR_ADDRESS.search(text)) and len(text) <= 250
