"""``default_store()``: the store podline uses when none is named.

It is the store the ``PODLINE_STORE`` environment variable names (a directory or any config
``open_store`` accepts), or else a ``DeltaStore`` in ``.podline/`` under the working directory.
A local store's directory is created when the first records are written to it.
"""

from __future__ import annotations

import os
from pathlib import Path

from podline.stores.base import Store
from podline.stores.config import open_store
from podline.stores.delta import DeltaStore

__all__ = ["DEFAULT_DIRECTORY", "ENV_VAR", "default_store"]

#: The environment variable naming the default store.
ENV_VAR = "PODLINE_STORE"
#: The default store's directory, relative to the working directory.
DEFAULT_DIRECTORY = ".podline"


def default_store() -> Store:
    """A new store object for ``$PODLINE_STORE``, or ``./.podline`` if that is unset or empty.

    A relative path is taken relative to the working directory at the time of the call.
    """
    config = os.environ.get(ENV_VAR, "").strip()
    if config:
        return open_store(config)
    return DeltaStore(Path.cwd() / DEFAULT_DIRECTORY)
