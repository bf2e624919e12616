# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hold new connections to a published port while the registry behind it is swapped.

A registry container is swapped by a stop, a create and a start (distribution reads its
configuration only at start, so the read-only switch of a GC is a swap too). For the
fraction of a second in between nothing listens on the port: a client connecting then gets
"connection refused" and its pull fails.

While the swap runs, this drops the *first* packet (SYN) of every new TCP connection to the
port, in the ``raw`` table (before Docker's NAT and before docker-proxy): the client's kernel
sends the SYN again after one second and by then the new registry listens. So the client
sees a slower connect, never a refusal. Connections already open are not touched (the old
registry drains them: ``http.draintimeout``). This is the well-known trick for reloading a
proxy without refusing anyone; it needs root and ``iptables`` on the registry host. Where
either is missing the swap runs as before (a short refusal window) and the caller warns.

Safety: every rule carries a ``time --datestop`` a bounded time ahead, so a run killed
mid-swap cannot leave the port blocked beyond it; and the rules are named (a comment), so
the next run removes what a killed run left.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence

COMMENT_PREFIX = "dockhand-hold"
CHAINS = ("PREROUTING", "OUTPUT")
Runner = Callable[[Sequence[str]], "tuple[int, str]"]


def _run(argv: Sequence[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return 1, str(exc)
    return done.returncode, (done.stdout or "") + (done.stderr or "")


class ConnectionHold:
    """Context manager: new connections to ``port`` on ``address`` wait (SYN dropped) until released."""

    def __init__(
        self,
        port: int,
        address: str,
        name: str,
        seconds: float,
        runner: Runner = _run,
        which: Callable[[str], str | None] = shutil.which,
        is_root: Callable[[], bool] = lambda: os.geteuid() == 0,
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.timezone.utc),
    ) -> None:
        self.port = port
        self.address = address
        self.comment = "%s %s %d" % (COMMENT_PREFIX, name, port)
        self.seconds = seconds
        self.runner = runner
        self.which = which
        self.is_root = is_root
        self.now = now
        self.added: list[list[str]] = []
        self.problem: str | None = None

    # -- which tools, which addresses -------------------------------------------------
    def _tools(self) -> list[tuple[str, str | None, bool]]:
        """(iptables binary, destination match or None, required) for each address family the binding serves.
        A wildcard binding is published on both families by the engine: IPv4 is required, IPv6 held where it can."""
        try:
            ip = ipaddress.ip_address(self.address)
        except ValueError:
            return []
        if ip.is_unspecified:
            return [("iptables", None, True), ("ip6tables", None, False)]
        return [("iptables" if ip.version == 4 else "ip6tables", str(ip), True)]

    def _rule(self, destination: str | None, stop: str | None) -> list[str]:
        rule = ["-p", "tcp", "--syn", "--dport", str(self.port), "-m", "addrtype", "--dst-type", "LOCAL"]
        if destination:
            rule += ["-d", destination]
        if stop:
            rule += ["-m", "time", "--datestop", stop]
        return [*rule, "-m", "comment", "--comment", self.comment, "-j", "DROP"]

    # -- leftovers of a killed run --------------------------------------------------
    def clear_leftovers(self, dry_run: bool = False) -> list[str]:
        """Delete the rules an interrupted run left for this port (only list them with ``dry_run``); the rules,
        in words. Nothing (and no error) without root or iptables."""
        removed: list[str] = []
        if not self.is_root():
            return removed
        for tool, _destination, _required in self._tools():
            binary = self.which(tool)
            if not binary:
                continue
            for chain in CHAINS:
                code, output = self.runner([binary, "-w", "-t", "raw", "-S", chain])
                if code != 0:
                    continue
                for line in output.splitlines():
                    if not line.startswith("-A ") or self.comment not in line:
                        continue
                    # iptables -S prints the rule as it would be added: "-A CHAIN ..." -> "-D CHAIN ...".
                    argv = [binary, "-w", "-t", "raw", "-D", *_split(line[3:])]
                    if dry_run or self.runner(argv)[0] == 0:
                        removed.append("%s raw %s" % (tool, chain))
        return removed

    # -- the hold -------------------------------------------------------------------
    def __enter__(self) -> ConnectionHold:
        if not self.is_root():
            self.problem = "not root"
            return self
        tools = self._tools()
        if not tools:
            self.problem = "bind address %s is not an IP address" % self.address
            return self
        # (What a killed run left is cleared by the caller first: RegistryContainer does it on every run.)
        stop = (self.now() + datetime.timedelta(seconds=self.seconds)).strftime("%Y-%m-%dT%H:%M:%S")
        for tool, destination, required in tools:
            problem = self._add(tool, destination, stop)
            if problem and required:
                self.problem = problem
                self.release()
                break
        return self

    def _add(self, tool: str, destination: str | None, stop: str) -> str | None:
        """Add the rule to both chains; on a failure remove this family's rules again and say why."""
        binary = self.which(tool)
        if not binary:
            return "%s is not installed" % tool
        added = []
        for chain in CHAINS:
            code, output = self.runner([binary, "-w", "-t", "raw", "-I", chain, *self._rule(destination, stop)])
            if code != 0:
                # A kernel without the time match: hold all the same; the next run clears a rule a kill left.
                code, output = self.runner([binary, "-w", "-t", "raw", "-I", chain, *self._rule(destination, None)])
                rule = [binary, chain, *self._rule(destination, None)]
            else:
                rule = [binary, chain, *self._rule(destination, stop)]
            if code != 0:
                for binary_, *rest in added:
                    self.runner([binary_, "-w", "-t", "raw", "-D", *rest])
                return "%s: %s" % (tool, " ".join(output.split())[:200] or "exit %d" % code)
            added.append(rule)
        self.added.extend(added)
        return None

    @property
    def active(self) -> bool:
        return bool(self.added)

    def release(self) -> None:
        """Let new connections through again (idempotent; every rule is tried even when one fails)."""
        while self.added:
            binary, *rule = self.added.pop()
            self.runner([binary, "-w", "-t", "raw", "-D", *rule])

    def __exit__(self, *exc: object) -> None:
        self.release()


def _split(text: str) -> list[str]:
    """Split an ``iptables -S`` line (its only quoting is a double-quoted comment)."""
    words: list[str] = []
    current = ""
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char == " " and not quoted:
            if current:
                words.append(current)
            current = ""
        else:
            current += char
    if current:
        words.append(current)
    return words
