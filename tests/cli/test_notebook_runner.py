"""`python -m tuner.cli.notebook` (`make notebook`): its injected parameters."""

from __future__ import annotations

from tuner.cli.notebook import parameters_source


def test_notebook_parameters_are_python_without_a_study_to_compare() -> None:
    """`make notebook STUDY=co2` passes no COMPARE: the injected cell must run."""
    source = parameters_source({"study": "co2", "compare_with": None, "storage": "sqlite:///x"})
    scope: dict[str, object] = {}
    exec(source, scope)
    assert scope["compare_with"] is None and scope["study"] == "co2"
