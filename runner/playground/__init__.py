"""The local playground: a page on loopback to talk to a running bot and watch its trace.

The page (built from ``web/`` with ``npm ci && npm run build``) joins the bot's room as a
person with a token lkrun mints; this package is its small HTTP server. It never imports
pipecat.
"""

from runner.playground.server import BUNDLE, STATIC_DIR, Playground, PlaygroundError

__all__ = ["BUNDLE", "STATIC_DIR", "Playground", "PlaygroundError"]
