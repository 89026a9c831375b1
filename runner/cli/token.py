"""``lkrun token``: mint a join token for a person."""

from __future__ import annotations

import click


def mint_token(room: str, identity: str, name: str | None, ttl_minutes: int) -> int:
    from runner.connect.tokens import CredentialsError, person_token, resolve_credentials
    try:
        key, secret = resolve_credentials()
        click.echo(person_token(key, secret, room=room, identity=identity, name=name, ttl_minutes=ttl_minutes))
    except (CredentialsError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    return 0
