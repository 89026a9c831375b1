"""``lkrun dispatch BOT --room R``: ask LiveKit to send a bot (by file or agent name) into a room.

Why through the server and not straight to a worker: the server picks the least-loaded
worker anywhere in the fleet, creates the room when it does not exist, and remembers the
dispatch, so ``lkrun dispatch --delete`` (or deleting the room) makes the bot leave.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click


def agent_name_of(bot: str) -> str:
    """A bot file -> its name (the agent name its workers register); anything else is the name itself."""
    path = Path(bot)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        from runner.botfile.check import check_file
        return check_file(path, allow_missing_env=True).name
    return bot


async def _call(url, key, secret, action):
    from livekit import api
    async with api.LiveKitAPI(url, key, secret) as lk:
        return await action(lk.agent_dispatch, api)


def dispatch_cli(bot: str | None, room: str, *, metadata: str | None = None, delete: str | None = None,
                 list_only: bool = False, url: str | None = None, environ=os.environ) -> int:
    """Create (default), list (``list_only``) or delete (``delete=ID``) dispatches in ``room``."""
    from runner.botfile.errors import ConfigError
    from runner.connect.tokens import CredentialsError, resolve_credentials
    url = url or environ.get("LIVEKIT_URL")
    if not url:
        click.echo("error: set LIVEKIT_URL (or --url) to the LiveKit server the workers use", err=True)
        return 1
    try:
        key, secret = resolve_credentials(env=environ)
    except CredentialsError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    if list_only:
        found = asyncio.run(_call(url, key, secret, lambda svc, api: svc.list_dispatch(room)))
        for d in found:
            workers = ", ".join(f"{j.id} on {j.state.worker_id or '?'} as {j.state.participant_identity or '?'}"
                                for j in d.state.jobs) or "no job yet"
            click.echo(f"{d.id}  agent '{d.agent_name}'  {workers}")
        return 0
    if delete:
        asyncio.run(_call(url, key, secret, lambda svc, api: svc.delete_dispatch(delete, room)))
        click.echo(f"deleted dispatch {delete} in room '{room}'")
        return 0
    if not bot:
        click.echo("error: name a bot file or an agent name to dispatch", err=True)
        return 1
    try:
        name = agent_name_of(bot)
    except ConfigError as exc:
        click.echo(exc.render(), err=True)
        return 1

    def create(svc, api):
        return svc.create_dispatch(api.CreateAgentDispatchRequest(agent_name=name, room=room, metadata=metadata or ""))

    dispatch = asyncio.run(_call(url, key, secret, create))
    click.echo(f"dispatched '{name}' to room '{room}' (dispatch {dispatch.id})")
    return 0
