"""Reload decisions (pure): which tier an edit needs. End-to-end reloads: test_reload_live.py."""

import pytest

from runner.check import check_document
from runner.reload import describe, diff
from runner.yamlsafe import load_text

BASE = """
version: 1
name: r
livekit: {room: lobby, identity: r}
params: {audio_out_enabled: true}
pipeline:
  - tts: {type: espeak_tts, settings: {voice: en-us}}
vars: {greeting: Hello}
on:
  participant_connected:
    - say: "{{ vars.greeting }}"
"""


def spec(text):
    return check_document(load_text(text, "r.yaml"), environ={})


@pytest.mark.parametrize("edit, tier, changes", [
    (("greeting: Hello", "greeting: Hi"), "live", ["vars"]),
    (('- say: "{{ vars.greeting }}"', '- say: "{{ vars.greeting }}!"'), "live", ["on"]),
    (("voice: en-us", "voice: en-gb"), "settings", ["pipeline"]),
    (("audio_out_enabled: true", "audio_out_enabled: true, audio_out_volume: 0.5"), "generation", ["params"]),
    (("type: espeak_tts, settings: {voice: en-us}", "type: piper_tts"), "generation", ["pipeline"]),
    (("room: lobby", "room: other"), "generation", ["livekit"]),
])
def test_tier_of_each_kind_of_edit(edit, tier, changes):
    old, new = spec(BASE), spec(BASE.replace(*edit))
    change = diff(old, new)
    assert change["tier"] == tier
    assert change["changes"] == changes


def test_settings_delta_names_only_changed_fields():
    change = diff(spec(BASE), spec(BASE.replace("voice: en-us", "voice: en-gb, rate: 150")))
    assert change["tier"] == "settings"
    assert change["settings"] == {0: {"voice": "en-gb", "rate": 150}}


def test_removing_a_setting_needs_a_new_generation():
    old = spec(BASE.replace("voice: en-us", "voice: en-us, rate: 150"))
    assert diff(old, spec(BASE))["tier"] == "generation"


def test_unchanged_file_is_live_with_no_changes():
    change = diff(spec(BASE), spec(BASE))
    assert change == {"tier": "live", "changes": [], "settings": {}}
    assert describe(change) == "nothing changed, applied live"


def test_description_reads_like_the_notice():
    assert describe(diff(spec(BASE), spec(BASE.replace("Hello", "Hi")))) == "vars changed, applied live"


def test_var_used_by_a_setting_updates_the_service_live():
    base = BASE.replace("settings: {voice: en-us}", 'settings: {voice: "{{ vars.voice }}"}').replace(
        "greeting: Hello", "greeting: Hello, voice: en-us")
    change = diff(spec(base), spec(base.replace("voice: en-us}", "voice: en-gb}")))
    assert change["tier"] == "settings"
    assert change["settings"] == {0: {"voice": "en-gb"}}
