"""Printing a benchmark module's ratio lines at the end of its run."""

from __future__ import annotations

import contextlib

import pytest


def print_report(config: pytest.Config, title: str, lines: list[str]) -> None:
    """Write ``lines`` under a ``title`` rule on the terminal, even from a teardown.

    Teardown output is captured like a test's, so this steps around the capture.
    """
    writer = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if writer is None or not lines:
        return
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        writer.write_line("")
        writer.write_sep("-", title)
        for line in lines:
            writer.write_line(line)
