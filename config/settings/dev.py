"""Embedded defaults for `make run`: SQLite, no servers to install."""

from .base import *  # noqa: F403

DEBUG = True
