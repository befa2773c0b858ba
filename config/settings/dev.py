"""Embedded defaults for `make run`: SQLite, no servers to install.

`make run` shows the product's own 404/403/500 pages, as a user would see them; Django's debug
pages (which list every URL pattern and setting) only where a developer asks: MANIFOLD_DEBUG=1.
"""

import os

from .base import *  # noqa: F403

DEBUG = os.environ.get("MANIFOLD_DEBUG", "") == "1"
# Without DEBUG, WhiteNoise still serves the source folders (no collectstatic after each edit).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
