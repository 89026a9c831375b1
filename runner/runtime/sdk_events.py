"""The LiveKit SDK's event callback, with the same effects as its own but cheap log records.

The SDK starts its Rust core with ``capture_logs`` on, and then the core forwards *every* log
record to Python, each as its own FFI event: libwebrtc's verbose sink, tungstenite's traces.
``RUST_LOG`` does not filter them (livekit 1.2.1). Two rooms exchanging 200 data packets got
4,807 log events beside 410 others. The SDK's callback handles each under the GIL with four
protobuf enum lookups and an ``os.environ`` read per record, then drops almost all of them:
at 50 bots in one process that was about half of the SDK callback's time and a quarter of
lkrun's CPU. Here a record costs a dict lookup and ``isEnabledFor``; what reaches the
``livekit`` logger is what the SDK's callback would have logged (``LIVEKIT_RTC_DEBUG`` is read
once, at start). Panics and every other event are handled as the SDK does.

The callback is given to the core when the SDK's ``FfiClient`` starts (the first room), so it
is installed before that; tests/test_sdk_events.py is the canary for the SDK's side of it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys


def install() -> bool:
    """Use lkrun's callback from the SDK's start on; False when the SDK has started already."""
    from livekit.rtc import _ffi_client as ffi
    if ffi.FfiClient._instance is not None or getattr(ffi, "_lkrun_callback", False):
        return False
    proto = ffi.proto_ffi
    levels = {proto.LogLevel.LOG_ERROR: logging.ERROR, proto.LogLevel.LOG_WARN: logging.WARNING,
              proto.LogLevel.LOG_INFO: logging.INFO, proto.LogLevel.LOG_DEBUG: logging.DEBUG}
    rtc_debug = os.environ.get("LIVEKIT_RTC_DEBUG", "").strip().lower() in ("true", "1")
    sdk_logger, new_event, string_at, client = ffi.logger, proto.FfiEvent, ctypes.string_at, ffi.FfiClient

    logs_tag = _varint_bytes(proto.FfiEvent.DESCRIPTOR.fields_by_name["logs"].number << 3 | 2)
    quiet_from = proto.LogLevel.LOG_DEBUG  # DEBUG and TRACE: dropped while the logger is not at DEBUG

    @ctypes.CFUNCTYPE(None, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t)
    def on_event(data_ptr, data_len) -> None:
        data = string_at(data_ptr, int(data_len))
        if data.startswith(logs_tag) and not sdk_logger.isEnabledFor(logging.DEBUG) and _quiet(
                data, len(logs_tag), quiet_from):
            return  # nothing in it would be logged: not even parsed
        event = new_event()
        event.ParseFromString(data)
        which = event.WhichOneof("message")
        if which == "logs":
            for record in event.logs.records:
                level = levels.get(record.level)  # TRACE: None, never logged (as the SDK does)
                if level is None or not sdk_logger.isEnabledFor(level):
                    continue
                if level == logging.DEBUG and not rtc_debug and (
                        record.target == "libwebrtc" or record.target.startswith("livekit")):
                    continue
                sdk_logger.log(level, "%s:%s:%s - %s", record.target, record.line, record.module_path,
                               record.message)
            return
        if which == "panic":  # unrecoverable, as the SDK says: end the process
            print("FFI Panic: ", event.panic.message, file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        client.instance.queue.put(event)

    ffi.ffi_event_callback = on_event  # FfiClient.__init__ passes this global to the core
    ffi._lkrun_callback = on_event  # and ctypes needs it alive as long as the core may call it
    return True


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i += 1
        if byte < 0x80:
            return value, i
        shift += 7


def _quiet(data: bytes, i: int, quiet_from: int) -> bool:
    """A serialized LogBatch (after its tag) whose every record has a level >= quiet_from, read
    without parsing: each record starts with its level (field 1; absent means 0, ERROR). Anything
    else, or any doubt, is False and the event is parsed the SDK's way."""
    try:
        length, i = _varint(data, i)
        end = i + length
        while i < end:
            if data[i] != 0x0A:  # field 1 (records), length-delimited
                return False
            size, i = _varint(data, i + 1)
            if size < 2 or data[i] != 0x08 or data[i + 1] < quiet_from:  # level: a one-byte varint
                return False
            i += size
        return i == end == len(data)
    except IndexError:
        return False
