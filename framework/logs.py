"""Logging for a server of many processes: every line says which process wrote it, and SIGHUP
reopens log files (after logrotate moved them).

:func:`install_labels` makes every log record carry ``%(process_label)s``: ``main`` in the
supervisor, ``shard N`` in shard N's process (the shard sets :func:`set_label` once forked).
:func:`reopen_log_files` closes every ``logging.FileHandler``'s stream; the handler opens the
file again, by its name, on its next line. The supervisor calls it on SIGHUP and passes the
signal on to every shard, which calls it too.
"""

from __future__ import annotations

import logging

__all__ = ["install_labels", "set_label", "reopen_log_files"]

_label = "main"
_installed = False


def set_label(label: str) -> None:
    global _label
    _label = label


def install_labels() -> None:
    """Give every record a ``process_label`` attribute (once per process tree)."""
    global _installed
    if _installed:
        return
    _installed = True
    make = logging.getLogRecordFactory()

    def labelled(*args, **kwargs):  # type: ignore[no-untyped-def]
        record = make(*args, **kwargs)
        record.process_label = _label
        return record

    logging.setLogRecordFactory(labelled)


def reopen_log_files() -> None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                if handler.stream is not None:
                    handler.stream.close()
                    handler.stream = None  # type: ignore[assignment]
            finally:
                handler.release()
