"""runtime/sdk_events.py: lkrun's SDK event callback does what the SDK's does, and the SDK still
starts its core with the callback lkrun puts in place (the canary for a livekit upgrade)."""

from __future__ import annotations

import ctypes
import inspect
import logging
import subprocess
import sys
import types

from livekit.rtc import _ffi_client as ffi

from runner.runtime import sdk_events

LEVEL = ffi.proto_ffi.LogLevel


def _call(callback, event) -> None:
    data = event.SerializeToString()
    buf = (ctypes.c_uint8 * max(1, len(data))).from_buffer_copy(data or b"\0")
    callback(ctypes.cast(buf, ctypes.POINTER(ctypes.c_uint8)), len(data))


def _log_event(*records):
    event = ffi.proto_ffi.FfiEvent()
    for level, target, message in records:
        record = event.logs.records.add()
        record.level, record.target, record.message, record.line, record.module_path = level, target, message, 7, "m"
    return event


def test_the_sdk_still_starts_its_core_with_the_module_global_callback():
    source = inspect.getsource(ffi.FfiClient.__init__)
    assert "livekit_ffi_initialize(" in source and "ffi_event_callback" in source
    assert hasattr(ffi.FfiClient, "_instance") and isinstance(ffi.logger, logging.Logger)
    assert {"LOG_ERROR", "LOG_WARN", "LOG_INFO", "LOG_DEBUG", "LOG_TRACE"} <= set(LEVEL.keys())


def test_this_test_process_runs_on_lkruns_callback():
    assert getattr(ffi, "_lkrun_callback", None) is ffi.ffi_event_callback  # tests/conftest.py installed it


def test_log_records_reach_the_livekit_logger_as_the_sdk_would_log_them(caplog):
    caplog.set_level(logging.DEBUG, logger="livekit")
    _call(ffi.ffi_event_callback, _log_event(
        (LEVEL.LOG_WARN, "livekit::room", "a warning"),
        (LEVEL.LOG_ERROR, "libwebrtc", "an error"),
        (LEVEL.LOG_DEBUG, "libwebrtc", "verbose webrtc"),     # dropped: rtc debug off
        (LEVEL.LOG_DEBUG, "livekit::rtc_engine", "engine"),   # dropped: rtc debug off
        (LEVEL.LOG_DEBUG, "tokio_tungstenite", "other debug"),  # kept at DEBUG, as the SDK does
        (LEVEL.LOG_TRACE, "tungstenite", "trace")))           # never logged
    seen = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "livekit"]
    assert seen == [(logging.WARNING, "livekit::room:7:m - a warning"), (logging.ERROR, "libwebrtc:7:m - an error"),
                    (logging.DEBUG, "tokio_tungstenite:7:m - other debug")]


def test_records_below_the_loggers_level_are_skipped(caplog):
    caplog.set_level(logging.WARNING, logger="livekit")
    _call(ffi.ffi_event_callback, _log_event((LEVEL.LOG_DEBUG, "tokio_tungstenite", "debug"),
                                             (LEVEL.LOG_INFO, "livekit::room", "info"),
                                             (LEVEL.LOG_WARN, "livekit::room", "warn")))
    assert [r.getMessage() for r in caplog.records if r.name == "livekit"] == ["livekit::room:7:m - warn"]


def test_other_events_go_to_the_sdks_queue(monkeypatch):
    put = []
    monkeypatch.setattr(ffi.FfiClient, "_instance", types.SimpleNamespace(queue=types.SimpleNamespace(put=put.append)))
    event = ffi.proto_ffi.FfiEvent()
    event.room_event.room_handle = 42
    _call(ffi.ffi_event_callback, event)
    assert len(put) == 1 and put[0].room_event.room_handle == 42


def test_installing_after_the_sdk_started_keeps_the_sdks_callback():
    code = ("from livekit.rtc import _ffi_client as ffi\nfrom runner.runtime import sdk_events\n"
            "ffi.FfiClient.instance\nprint(sdk_events.install(), ffi.ffi_event_callback is getattr(ffi, '_lkrun_callback', None))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr


def test_installing_twice_is_harmless():
    assert sdk_events.install() is False  # conftest installed it; the callback stays the one the core has


def _batch_bytes(*records) -> tuple[bytes, int]:
    data = _log_event(*records).SerializeToString()
    tag = sdk_events._varint_bytes(ffi.proto_ffi.FfiEvent.DESCRIPTOR.fields_by_name["logs"].number << 3 | 2)
    assert data.startswith(tag)
    return data, len(tag)


def test_a_batch_of_debug_and_trace_records_is_recognised_without_parsing():
    long = "x" * 5000  # lengths that need two-byte varints
    data, start = _batch_bytes((LEVEL.LOG_DEBUG, "libwebrtc", long), (LEVEL.LOG_TRACE, "tungstenite", "t"))
    assert sdk_events._quiet(data, start, LEVEL.LOG_DEBUG)


def test_a_batch_with_anything_louder_is_parsed():
    for loud in (LEVEL.LOG_INFO, LEVEL.LOG_WARN, LEVEL.LOG_ERROR):  # ERROR is level 0: no level field at all
        data, start = _batch_bytes((LEVEL.LOG_DEBUG, "libwebrtc", "d"), (loud, "livekit::room", "loud"))
        assert not sdk_events._quiet(data, start, LEVEL.LOG_DEBUG), loud
    data, start = _batch_bytes((LEVEL.LOG_DEBUG, "libwebrtc", "d"))
    assert not sdk_events._quiet(data[:-3], start, LEVEL.LOG_DEBUG)  # truncated: in doubt, parse


def test_a_warning_after_debug_records_still_reaches_the_logger(caplog):
    caplog.set_level(logging.INFO, logger="livekit")
    _call(ffi.ffi_event_callback, _log_event((LEVEL.LOG_DEBUG, "libwebrtc", "d"), (LEVEL.LOG_WARN, "livekit::room", "w")))
    _call(ffi.ffi_event_callback, _log_event((LEVEL.LOG_DEBUG, "tokio_tungstenite", "quiet batch")))
    assert [r.getMessage() for r in caplog.records if r.name == "livekit"] == ["livekit::room:7:m - w"]
