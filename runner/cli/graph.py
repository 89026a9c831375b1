"""``lkrun graph BOT``: the bot's flow as Mermaid text (paste it into any Mermaid viewer)."""

from __future__ import annotations

import click


def graph(path: str, current: str | None = None) -> int:
    from runner.botfile.check import check_file
    from runner.botfile.errors import ConfigError
    from runner.botfile.flow_graph import mermaid

    try:
        spec = check_file(path)
    except ConfigError as exc:
        click.echo(exc.render(), err=True)
        return 1
    if spec.flow is None:
        click.echo(f"{path}: this bot has no flow: section", err=True)
        return 1
    if current is not None and current not in spec.flow.config["nodes"]:
        from runner.botfile.errors import did_you_mean
        click.echo(f"there is no node named '{current}'{did_you_mean(current, spec.flow.config['nodes'])}", err=True)
        return 1
    click.echo(mermaid(spec.flow.config, current), nl=False)
    return 0
