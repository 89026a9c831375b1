"""The ``lkrun`` command: thin click wrappers around plain functions that return exit codes.

Heavy modules (pipecat, livekit) are imported inside the commands that need them, so
``lkrun validate`` stays fast and never imports pipecat.
"""

from __future__ import annotations

import sys

import click


class _DefaultRun(click.Group):
    """``lkrun bots/x.yaml`` means ``lkrun run bots/x.yaml``."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultRun, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lkrun", message="lkrun %(version)s")
def main():
    """Run YAML-described bots in LiveKit rooms (pipecat's LiveKitTransport).

    \b
    lkrun bots/greeter.yaml          run a bot (embedded dev server when no LIVEKIT_URL)
    lkrun validate bots/             check bot files, compiler-style errors
    lkrun simulate BOT EVENT         run an event's actions without a room
    lkrun test bots/                 run the bots' conversation tests (*.test.yaml) offline
    lkrun worker bots/ --max-jobs 8   take rooms from LiveKit's agent dispatch (many machines)
    lkrun dispatch BOT --room R       send a bot into a room through the workers
    """


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--reload/--no-reload", default=True, help="Apply edits to the bot files live (default on).")
@click.option("--once", is_flag=True, help="Exit 0 when every bot has ended instead of waiting for the next person.")
@click.option("--playground/--no-playground", default=True, help="Serve the local playground page.")
@click.option("--port", type=int, default=0, help="Playground port (default: a free one).")
@click.option("--edit/--no-edit", default=True,
              help="Let the playground page save the bot files (default on; --no-edit: read and check only).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging (event traces).")
def run(paths, reload, once, playground, port, edit, verbose):
    """Run one or more bot files (or folders of them)."""
    from runner.host.supervisor import run_cli
    sys.exit(run_cli(list(paths), reload=reload, once=once, verbose=verbose, playground=playground, port=port,
                     edit=edit))


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--allow-missing-env", is_flag=True, help="Report unset ${VARS} as warnings (CI without secrets).")
def validate(paths, fmt, allow_missing_env):
    """Check bot files; exit 1 when any has an error."""
    from runner.cli.validate import validate_paths
    sys.exit(validate_paths(list(paths), fmt=fmt, allow_missing_env=allow_missing_env))


@main.command()
@click.argument("bot", type=click.Path())
@click.option("--node", default=None, help="Highlight this node.")
def graph(bot, node):
    """Print the bot's flow as a Mermaid flowchart."""
    from runner.cli.graph import graph as print_graph
    sys.exit(print_graph(bot, node))


@main.command()
@click.option("--write", "target", type=click.Path(), default=None, help="Write the schema to this file.")
def schema(target):
    """Print (or write) the bot file JSON Schema, for editors."""
    from runner.botfile.schema import render
    text = render()
    if target:
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(text)
        click.echo(f"wrote {target}")
    else:
        click.echo(text, nl=False)


@main.command(epilog="""\b
Examples:
  lkrun simulate bots/greeter.yaml participant_connected --name Ada
  lkrun simulate bots/greeter.yaml data_received --text ping
  lkrun simulate bots/greeter.yaml user_said --text "okay, bye"
  lkrun simulate bots/greeter.yaml participant_left --others bob --var reason=CLIENT_INITIATED
  lkrun simulate bots/x.yaml dtmf_event --digit 5 --state '{"count": 2}'
  lkrun simulate bots/x.yaml error --var error.message=boom --var error.line=12
  lkrun simulate examples/clinic_intake.yaml node_entered --node book --state '{"name": "Ada"}'""")
@click.argument("bot", type=click.Path())
@click.argument("event")
@click.option("--participant", default="alice", show_default=True, help="The participant's identity.")
@click.option("--name", default=None, help="The participant's display name.")
@click.option("--text", default=None,
              help="What the person said or typed (user_said, chat_received, user_turn_stopped), "
                   "or the data message (data_received, app_message).")
@click.option("--data", default=None, help="The data message payload (text or JSON); the same as --text there.")
@click.option("--digit", default=None, help="The keypad digit of dtmf_event.")
@click.option("--var", "assignments", multiple=True, metavar="NAME=VALUE",
              help="Set any event variable (repeatable): VALUE is JSON when it parses, else text; "
                   "dotted names set fields (--var error.message=boom).")
@click.option("--others", default="", metavar="ID,ID",
              help="Who else is in the room (room.participants); default: only --participant.")
@click.option("--state", "room_state", default=None, metavar="JSON",
              help="The room state before the run, e.g. '{\"count\": 2}'.")
@click.option("--participant-state", default=None, metavar="JSON", help="The participant's state before the run.")
@click.option("--node", default=None, help="node_entered: the flow node to show, rendered (default: the first).")
@click.option("--allow-missing-env", is_flag=True, help="Unset ${VARS} are warnings, not errors.")
def simulate(bot, event, participant, name, text, data, digit, assignments, others, room_state,
             participant_state, node, allow_missing_env):
    """Run an event's actions without a room and show what would happen."""
    from runner.cli.simulate import simulate_cli
    sys.exit(simulate_cli(bot, event, participant=participant, name=name, data=data, text=text, digit=digit,
                          assignments=assignments, others=[o.strip() for o in others.split(",") if o.strip()],
                          room_state=room_state, participant_state=participant_state, node=node,
                          allow_missing_env=allow_missing_env))


@main.command("test", epilog="""\b
Examples:
  lkrun test bots/ examples/              every *.test.yaml in these folders
  lkrun test bots/greeter.yaml            a bot file runs its greeter.test.yaml
  lkrun test bots/ --junit report.xml     JUnit XML for CI
  lkrun test bots/ --live                 the same cases in a real room (embedded server)
  lkrun test examples/voice_assistant.yaml --llm-url http://127.0.0.1:8000/v1""")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--junit", "junit_file", type=click.Path(), default=None, help="Also write a JUnit XML report here.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--llm-url", default=None, metavar="URL",
              help="Offline: LLM requests no llm: step answers go to this OpenAI-compatible server.")
@click.option("--live", is_flag=True, help="Run the cases against the real bot in real LiveKit rooms.")
@click.option("--url", "livekit_url", default=None, metavar="URL",
              help="With --live: the LiveKit server (default: LIVEKIT_URL, else an embedded dev server).")
@click.option("--case", "only", multiple=True, metavar="TEXT", help="Only the cases whose name contains TEXT.")
def test_command(paths, junit_file, fmt, llm_url, live, livekit_url, only):
    """Run conversation tests (*.test.yaml) offline; exit 1 on a failure, 2 on a test-file error."""
    from runner.cli.test import test_cli
    sys.exit(test_cli(list(paths), junit_file=junit_file, fmt=fmt, llm_url=llm_url, live=live,
                      livekit_url=livekit_url, only=only))


@main.command()
@click.argument("name")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def new(name, force):
    """Write a commented starter bot file (NAME or NAME.yaml)."""
    from runner.cli.new import new_bot
    sys.exit(new_bot(name, force=force))


@main.command()
@click.option("--room", required=True)
@click.option("--identity", required=True)
@click.option("--name", default=None)
@click.option("--ttl", "ttl_minutes", type=int, default=60, show_default=True, help="Minutes.")
def token(room, identity, name, ttl_minutes):
    """Mint a join token for a person (LIVEKIT_API_KEY / LIVEKIT_API_SECRET)."""
    from runner.cli.token import mint_token
    sys.exit(mint_token(room, identity, name, ttl_minutes))


@main.command()
def events():
    """List the events (with their template variables)."""
    from runner.cli.describe import describe_events
    click.echo(describe_events())


@main.command()
def actions():
    """List the actions and their shapes."""
    from runner.cli.describe import describe_actions
    click.echo(describe_actions())


@main.command()
@click.argument("kind", required=False, type=click.Choice(["vad", "stt", "llm", "tts"]))
def stages(kind):
    """List the pipeline stage types (from pipecat's service catalog)."""
    from runner.cli.describe import describe_stages
    click.echo(describe_stages(kind))


from runner.worker.commands import dispatch as _dispatch_cmd, worker as _worker_cmd  # noqa: E402

main.add_command(_worker_cmd)
main.add_command(_dispatch_cmd)

if __name__ == "__main__":
    main()
