"""The gateway's ``project`` channels: ``project:<id>`` carries a project's runs, their outputs
and its kernel's state to every member (frames: docs/documents.md)."""

from __future__ import annotations

from typing import Any

from hub.errors import CohortError
from hub.identity.models import User
from hub.realtime.gateway import BasePolicy
from ide.kernels import Kernels
from ide.projects import Projects


class ProjectChannelPolicy(BasePolicy):
    """Members subscribe; clients never publish (runs start through the REST API). Not
    durable: a run's outputs are kept with the run (``GET /api/projects/{id}/runs/{run}``)."""

    def __init__(self, projects: Projects, kernels: Kernels) -> None:
        self._projects = projects
        self._kernels = kernels

    async def current(self, channel: str) -> list[dict[str, Any]]:
        return await self._kernels.current(int(channel.partition(":")[2]))

    async def can_subscribe(self, user: User, channel: str) -> bool:
        _, _, rest = channel.partition(":")
        if not rest.isdigit() or rest.startswith("0"):
            return False
        try:
            await self._projects.get(user, int(rest))
        except CohortError:
            return False
        return True
