# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's membership of one Docker Swarm (swarm_node): init a swarm, or join it as manager or worker.

The engine does the work; this file decides what to ask for and says what changed. All engine calls go through
:class:`EngineClient`. The registry as a Swarm service is swarm.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError
from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineClient


class SwarmError(DockhandError):
    """A swarm request that cannot be met (wrong swarm, wrong role, bad value)."""


def manager_host(address: str) -> str:
    """``10.0.0.1:2377`` → ``10.0.0.1`` (``[::1]:2377`` → ``::1``)."""
    if address.startswith("["):
        return address[1 : address.index("]")]
    return address.rsplit(":", 1)[0] if address.count(":") == 1 else address


def check_membership(role: str, join_addr: list[str], join_token: str | None) -> None:
    """Raise SwarmError when ``role``, ``join_addr`` and ``join_token`` cannot describe a swarm membership."""
    if join_addr and not join_token:
        raise SwarmError("join_addr %s needs join_token" % ", ".join(join_addr))
    if not join_addr and role != "manager":
        raise SwarmError("role=%s needs join_addr: only a manager starts a new swarm" % role)


class SwarmNode:
    """Make the engine a member of one swarm: init it (no ``join_addr``) or join it as manager or worker."""

    def __init__(
        self,
        engine: EngineClient,
        role: str,
        join_addr: list[str],
        join_token: str | None,
        advertise_addr: str | None,
        listen_addr: str,
        swarm_id: str | None = None,
        check_mode: bool = False,
    ) -> None:
        self.engine = engine
        self.role = role
        self.join_addr = join_addr
        self.join_token = join_token
        self.advertise_addr = advertise_addr
        self.listen_addr = listen_addr
        self.swarm_id = swarm_id
        self.check_mode = check_mode

    @classmethod
    def from_params(cls, params: dict[str, Any], engine_of: Callable[[], EngineClient], check_mode: bool = False) -> SwarmNode:
        """The node swarm_node's options describe; every value is checked before ``engine_of()`` connects."""
        check_membership(params["role"], params["join_addr"], params["join_token"])
        return cls(
            engine_of(), params["role"], params["join_addr"], params["join_token"], params["advertise_addr"],
            params["listen_addr"], params["swarm_id"], check_mode,
        )

    def validate(self) -> None:
        check_membership(self.role, self.join_addr, self.join_token)

    def _membership(self, state: dict[str, Any]) -> tuple[str, str | None]:
        """(role, swarm ID or None) of a host already in a swarm; a worker cannot see the swarm's ID."""
        if state.get("ControlAvailable"):
            return "manager", (state.get("Cluster") or {}).get("ID")
        return "worker", None

    def _same_swarm(self, state: dict[str, Any], swarm_id: str | None) -> bool:
        if swarm_id is not None:
            return not self.swarm_id or swarm_id == self.swarm_id
        managers = {manager_host(m.get("Addr", "")) for m in state.get("RemoteManagers") or []}
        return not self.join_addr or bool(managers & {manager_host(a) for a in self.join_addr})

    def converge(self) -> dict[str, Any]:
        self.validate()
        state = self.engine.swarm_state()
        local = state.get("LocalNodeState") or "inactive"
        actions: list[str] = []
        if local in ("active", "pending"):
            role, swarm_id = self._membership(state)
            if not self._same_swarm(state, swarm_id):
                raise SwarmError(
                    "this host (node %s) is in another swarm (%s); leave it by hand (docker swarm leave) if that is meant"
                    % (state.get("NodeID"), swarm_id or "managers " + ", ".join(m.get("Addr", "") for m in state.get("RemoteManagers") or []))
                )
            if role != self.role:
                raise SwarmError(
                    "this host (node %s) is a %s of the swarm, wanted %s: %s it on a manager (docker node %s %s)"
                    % (state.get("NodeID"), role, self.role, "promote" if self.role == "manager" else "demote",
                       "promote" if self.role == "manager" else "demote", state.get("NodeID"))
                )  # fmt: skip
            return self._result(False, actions, state, before=role)
        if local == "locked":
            raise SwarmError("this host's swarm is locked (autolock): unlock it with docker swarm unlock first")
        if local == "error":
            raise SwarmError("this host's swarm state is 'error': %s" % (state.get("Error") or "no detail"))
        if not self.join_addr:
            actions.append("initialise a new swarm (advertise %s)" % (self.advertise_addr or "the default address"))
            if not self.check_mode:
                self.engine.swarm_init(self.advertise_addr, self.listen_addr)
        else:
            actions.append("join the swarm of %s as %s" % (", ".join(self.join_addr), self.role))
            if not self.check_mode:
                self.engine.swarm_join(self.join_addr, self.join_token or "", self.advertise_addr, self.listen_addr)
        after = state if self.check_mode else self.engine.swarm_state()
        return self._result(True, actions, after, before="none")

    def _result(self, changed: bool, actions: list[str], state: dict[str, Any], before: str) -> dict[str, Any]:
        result: dict[str, Any] = {
            "changed": changed,
            "actions": actions,
            "node_id": state.get("NodeID") or None,
            "role": self.role,
            "diff": {"before": {"swarm_role": before}, "after": {"swarm_role": self.role}},
        }
        if state.get("ControlAvailable") and not self.check_mode:
            swarm = self.engine.swarm()
            result["swarm_id"] = swarm.get("ID")
            managers = [n for n in self.engine.nodes() if n.get("ManagerStatus")]
            result["managers"] = sorted(n["ManagerStatus"].get("Addr") for n in managers if n["ManagerStatus"].get("Addr"))
            if not self.join_addr:
                # Needed by the hosts that join (only the host that starts the swarm hands them out); the role keeps
                # the task that reads them under no_log.
                tokens = swarm.get("JoinTokens") or {}
                result["join_tokens"] = {"manager": tokens.get("Manager"), "worker": tokens.get("Worker")}
        else:
            result["swarm_id"] = (state.get("Cluster") or {}).get("ID") or self.swarm_id
        return result
