"""Our Message-IDs: random, never repeated, not even by a forked child."""

from __future__ import annotations

import os

from gateway.identity import make_message_id, message_id_domain, random_hex


def test_message_ids_are_distinct_and_carry_our_domain() -> None:
    ids = {make_message_id("vendor.example") for _ in range(2000)}  # several 4 KB refills
    assert len(ids) == 2000
    assert {message_id_domain(i) for i in ids} == {"vendor.example"}
    assert all(len(i.split(".cg@")[0]) == 1 + 32 for i in ids)


def test_a_forked_child_does_not_repeat_the_parents_bytes() -> None:
    random_hex(16)  # the buffer now holds bytes the child must not hand out again
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, random_hex(16).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert len(child) == 32
    assert child != random_hex(16)
