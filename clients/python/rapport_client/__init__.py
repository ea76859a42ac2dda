"""Rapport Python SDK: sign protocol objects locally and talk to a Rapport server.

>>> from rapport_client import Client
>>> client = Client("https://rapport.example", key_file="~/.config/rapport/key.json")
>>> client.messages.send(cid, topic="order_updates", content="Your order shipped")

:class:`Client` (blocking) and :class:`AsyncClient` (asyncio) have the same resources:
``parties``, ``invitations``, ``connections``, ``grants``, ``mutes``, ``favours``,
``messages``, ``account``, ``events`` and ``webhook_endpoints``. Errors are typed
(:mod:`rapport_client.errors`); deliveries are checked with
:func:`rapport_client.webhooks.verify`; logs with :func:`verify_log`.
"""

from rapport_protocol import SigningKey
from rapport_protocol.types import GrantSpec, QuietHours, RateCap

from . import errors, keys, models, webhooks
from ._client import AsyncClient, Client
from ._core import DEFAULT_TIMEOUT, RetryPolicy
from ._resources import AsyncPager, SyncPager
from .errors import RapportError
from .keys import generate_key, key_from_env, load_key, save_key
from .logs import verify_log

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncClient",
    "AsyncPager",
    "Client",
    "GrantSpec",
    "QuietHours",
    "RapportError",
    "RateCap",
    "RetryPolicy",
    "SigningKey",
    "SyncPager",
    "errors",
    "generate_key",
    "key_from_env",
    "keys",
    "load_key",
    "models",
    "save_key",
    "verify_log",
    "webhooks",
]
