"""The README's sample of ``make run`` stays what ``make run`` prints.

``make run`` produces the generator's default traffic, runs the dataflow with 2 workers and
prints ``summary``. This runs the same on a fresh deployment and compares the shape of the
output with the README's sample: every line, numbers blanked and table padding collapsed, in any
order (reasons with equal counts come in the order the workers dead-lettered them).
"""

from __future__ import annotations

import re
from collections import Counter

from click.testing import CliRunner

from tests.integration.dataflow_harness import REPO, Deployment
from walkthroughs.tools.cli import main

_SAMPLE = re.compile(r"the dead-letter topic hold.*?\n```\n(.*?)\n```", re.S)


def shape(text: str, dlq_topic: str = "walkthroughs-dlq") -> Counter[str]:
    """The lines of a summary with what varies between runs blanked, as a multiset."""
    lines: Counter[str] = Counter()
    for raw in text.replace(dlq_topic, "walkthroughs-dlq").splitlines():
        line = re.sub(r"([─━ ])\1+", r"\1", re.sub(r"\d+", "N", raw)).strip()
        if line:
            lines[line] += 1
    return lines


def test_the_readme_shows_what_make_run_prints(deployment: Deployment) -> None:
    readme = (REPO / "README.md").read_text()
    sample = _SAMPLE.search(readme)
    assert sample is not None, "the README lost its sample of make run"
    env = deployment.env(COLUMNS="80")
    generated = CliRunner().invoke(main, ["generate"], env=env, catch_exceptions=False)
    assert generated.exit_code == 0, generated.output
    run = deployment.run("-w", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    summary = CliRunner().invoke(main, ["summary"], env=env, catch_exceptions=False)
    assert summary.exit_code == 0, summary.output
    printed = shape(summary.output, deployment.topic("dlq"))
    assert printed == shape(sample.group(1)), (
        f"README:\n{sample.group(1)}\n\nmake run's summary:\n{summary.output}"
    )
    assert "walkthroughs in MongoDB" in summary.output
