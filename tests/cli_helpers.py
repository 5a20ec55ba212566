"""Run the real CLI in-process against a test database."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from click.testing import CliRunner

from gateway.cli import cli
from gateway.clock import Clock


@dataclass
class Result:
    code: int
    out: str
    err: str
    out_bytes: bytes = b""

    def json(self) -> Any:
        return json.loads(self.out)


class Gateway:
    """``gw("case", "show", "1")`` runs ``case-gateway case show 1`` with this environment."""

    def __init__(self, db_url: str, clock: Clock | None = None, **env: str) -> None:
        self.env = {"GATEWAY_DATABASE__URL": db_url, "GATEWAY_CONFIG": "", **env}
        self.clock = clock

    def __call__(self, *args: str, input: str | None = None) -> Result:
        runner = CliRunner()
        result = runner.invoke(
            cli, list(args), env=self.env, input=input, catch_exceptions=False, obj=self.clock
        )
        return Result(result.exit_code, result.stdout, result.stderr, result.stdout_bytes)

    def ok(self, *args: str) -> Result:
        result = self(*args)
        assert result.code == 0, f"{args} failed: {result.err or result.out}"
        return result
