"""The bot files the scenarios run, written into a scratch folder per run.

Templates live in ``bench/bots/*.yaml`` with ``__ROOM__`` / ``__IDENTITY__`` placeholders;
the generated inputs (the 1,000-action bot, the flow files, the loader bombs) are built here.
"""

from __future__ import annotations

from pathlib import Path

BOTS = Path(__file__).resolve().parent / "bots"
BOT_IDENTITY = "bench-bot"


def render(template: str, folder: Path, room: str, identity: str = BOT_IDENTITY, name: str | None = None) -> Path:
    """Write ``bench/bots/<template>.yaml`` for one room; returns the file's path."""
    text = (BOTS / f"{template}.yaml").read_text()
    text = text.replace("__ROOM__", room).replace("__IDENTITY__", identity).replace("__NAME__", name or room)
    path = folder / f"{name or room}.yaml"
    path.write_text(text)
    return path


def big_bot(actions: int = 1000) -> str:
    """A valid bot file with ``actions`` actions spread over several events (mixed kinds)."""
    lines = ["version: 1", "name: big", "description: a generated bot with many actions",
             "livekit: {room: big-room, identity: big}", "session: {rate_limit: 100}",
             "vars:", "  greeting: Hello", "  count: 3", "on:"]
    events = ["participant_connected", "data_received", "participant_left", "connected"]
    per_event = actions // len(events)
    written = 0
    for event in events:
        lines.append(f"  {event}:")
        for i in range(per_event if event != events[-1] else actions - written):
            kind = i % 5
            if kind == 0:
                lines.append(f"    - log: {{message: \"step {i} of {event} for {{{{ bot.name }}}}\", level: debug}}")
            elif kind == 1:
                lines.append(f"    - set: {{values: {{step_{i}: \"{{{{ vars.greeting }}}} {i}\"}}}}")
            elif kind == 2:
                lines.append(f"    - if: \"{{{{ vars.count > {i % 7} }}}}\"")
                lines.append(f"      then: [{{log: \"branch {i}\"}}]")
                lines.append(f"      else: [{{wait: 0}}]")
            elif kind == 3:
                lines.append(f"    - send: {{data: {{text: \"{{{{ vars.greeting }}}}\", n: {i}}}}}")
            else:
                lines.append(f"    - chat: \"message {i} from {{{{ bot.identity }}}}\"")
            written += 1
    return "\n".join(lines) + "\n"


def flow_config(target_bytes: int) -> str:
    """A valid pipecat FlowConfig YAML of about ``target_bytes`` (nodes with messages, tools, actions)."""
    head = ["initial_node: node_0", "nodes:"]
    nodes: list[str] = []
    size = sum(len(x) + 1 for x in head)
    i = 0
    while size < target_bytes or i < 2:
        block = [f"  node_{i}:",
                 "    role_message: You are a friendly order-taking assistant.",
                 "    task_messages:",
                 "      - role: developer",
                 f"        content: Step {i}. Greet the caller and ask what they want to do next.",
                 "    functions:",
                 f"      - name: go_next_{i}",
                 "        transition_only: true",
                 "        description: The caller wants to go on.",
                 f"        transition_to: node_{i + 1}",
                 "    pre_actions:",
                 f"      - type: tts_say",
                 f"        text: This is step {i}.",
                 "    post_actions:",
                 "      - type: end_conversation"]
        nodes.append("\n".join(block))
        size += sum(len(x) + 1 for x in block)
        i += 1
    last = nodes[-1].replace(f"transition_to: node_{i}", "transition_to: node_0")
    nodes[-1] = last
    return "\n".join(head + nodes) + "\n"


def alias_bomb(levels: int = 9) -> str:
    """The billion-laughs document (anchors and aliases multiplying a string 10^levels times)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, levels + 1):
        refs = ",".join([f"*a{n - 1}"] * 10)
        lines.append(f"a{n}: &a{n} [{refs}]")
    return "\n".join(lines) + "\n"


def deep_flow(depth: int = 30000) -> str:
    return "x: " + "[" * depth + "]" * depth + "\n"


def deep_block(depth: int = 30000) -> str:
    """Block sequences nested ``depth`` deep on one line: ``- - - ... x``."""
    return "- " * depth + "x\n"
