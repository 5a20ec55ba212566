"""From the mailbox to a disposition: DESIGN.md's pipeline, in four layers, each importing only
those below it (the contract is in ``pyproject.toml``, checked by ``lint-imports``).

``loop/`` -- the loop over a mailbox:
    ``runner`` rounds after IDLE or the poll interval, reconnecting (``reconnect``), one replica
    at a time (``lock``); ``round`` one round: fetch in batches, decide, move after commit;
    ``batch`` a batch: **store raw** (``store``), **parse** in the workers (``parsing``,
    ``workers``), decide in groups of one transaction, commit; ``failures`` a pipeline that
    raised (quarantined after three); ``release`` a quarantined message decided again.
``policy/`` -- one message decided, in its group's transaction (``pipeline``):
    ``stages`` check the parse, dedupe, **classify**, identify the sender, **match the
    reference**, **authorise**; ``apply`` **apply to the case**; ``respond`` **enqueue
    replies** in the outbox; ``lookups`` what the stages ask the database, prefetched for the
    group; ``record`` the row a decision writes; ``bounce_record`` a bounce on our sent mail.
``mail/`` -- what a parse worker makes of a message's bytes, with no database or IMAP
    (``analysis``): ``parse`` (mail-parser, ``mime_text``, ``clean``), ``sender`` (the one
    From), ``bounce`` and ``classify`` (loops, bounces, auto-replies), ``reply_text`` and
    ``replies/`` (the new words of a reply).
``imap/`` -- the IMAP client (``client``, ``protocol``, ``wire``), the interface the loop is
    written against (``mailbox``), ``fetching`` a batch whole or its headers, and ``memory``,
    an in-memory twin for tests.
"""
