"""The pipecat side of a bot: services built from checked stage specs (``services``,
``espeak_tts``), the voice pipeline and its taps (``pipeline``), audio files as
frames (``audio``) and the LLM tools schema (``tools``). It may import
``runner.botfile`` only; it talks to the running bot through the object it is
given (``bot.dispatcher.fire``), never by importing ``runner.runtime``.
"""
