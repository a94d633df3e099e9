"""A finished report directory opened in Python: ``reports.load_report(DIR)``.

It reads ``results.json`` (every run's history, the tables, the findings and paragraphs as
report.md prints them) and the figures beside it; nothing is trained or measured again. In a
notebook it displays the questions' answers, the experiment table and the figures inline;
``plot_learning_curves`` and ``plot_summary_table`` draw the homework's two figures from it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path

import pandas as pd

from reports.experiment.protocol import ALL_SETTINGS
from reports.render import plots, writer
from reports.render.experiment_text import QUESTIONS

FIGURES = {  # the question whose answer each figure illustrates (file stem -> question index)
    "timing": 0, "runtime": 0, **{writer.curve_figure(m)[:-4]: 1 for m in ALL_SETTINGS},
    "summary_table": 2}
INLINE_WIDTH = 900  # pixels: the report's figures, shrunk to keep a notebook small


class Report:
    """One finished report: its tables as DataFrames, its answers, its figures.

    Attributes:
        directory: the report directory.
        results: results.json as a dict.
    """

    def __init__(self, directory):
        self.directory = Path(directory)
        path = self.directory / "results.json"
        try:
            self.results = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"load_report: expected a finished report directory with "
                                    f"results.json, found no {path}") from None
        except ValueError as error:
            raise ValueError(f"load_report: {path} is not valid JSON ({error})") from None
        missing = {"configuration", "tables", "runs", "report"} - set(self.results)
        if missing:
            raise ValueError(f"load_report: {path} lacks {', '.join(sorted(missing))}: not "
                             "written by `tfparity report`")

    @property
    def models(self) -> list[str]:
        return list(self.results["configuration"]["models"])

    @property
    def runs(self) -> pd.DataFrame:
        """One row per run (model, setting, seed, implementation): final accuracies, verdict
        and its rule, stability, steps and times."""
        return pd.DataFrame(self.results["tables"]["runs"])

    @property
    def summary(self) -> pd.DataFrame:
        """Final test accuracy per experiment and implementation, mean and std over seeds, and
        the paired difference."""
        return pd.DataFrame(self.results["tables"]["summary"])

    @property
    def verdicts(self) -> pd.DataFrame:
        """Per experiment and implementation: the verdict (under-/over-fitting, good fit,
        diverged), how many seeds agree, and the rule with its numbers."""
        return pd.DataFrame(self.results["tables"]["verdicts"])

    @property
    def experiments(self) -> pd.DataFrame:
        """The experiment table of report.md, its cells as printed."""
        return pd.DataFrame(self.results["report"]["tables"]["experiments"])

    @property
    def answers(self) -> pd.DataFrame:
        """The answers of report.md as it was written (the code that wrote it may have been
        another version): a row per model, a column per question."""
        said = answers_of(self.directory / "report.md")
        return pd.DataFrame({model: {question: said.get((index, model), "")
                                     for index, question in enumerate(QUESTIONS)}
                             for model in self.models}).T

    @property
    def figures(self) -> dict[str, Path]:
        """The report's figures present in the directory, by file stem, in the report's order:
        timing, runtime, each model's curves, the summary table."""
        stems = ["timing", "runtime", *(writer.curve_figure(m)[:-4] for m in self.models),
                 "summary_table"]
        return {stem: self.directory / f"{stem}.png" for stem in stems
                if (self.directory / f"{stem}.png").is_file()}

    @property
    def timing(self) -> pd.DataFrame | None:
        """The timing phase's rows (both sides measured interleaved), None if it did not run."""
        timing = self.results.get("timing")
        return None if timing is None else pd.DataFrame(timing["rows"])

    def plot_learning_curves(self, models: list[str] | None = None):
        """Train-subset and test accuracy over training, NumPy solid and TensorFlow dashed: a
        row per model (default: every model of the report), a column per setting.

        Returns:
            A matplotlib figure.
        """
        models = self.models if models is None else list(models)
        unknown = [m for m in models if m not in self.models]
        if unknown:
            raise ValueError(f"plot_learning_curves: expected models among "
                             f"{', '.join(self.models)}, received {', '.join(unknown)}")
        return _closed(plots.learning_curves_figure(self.results["runs"], models))

    def plot_summary_table(self):
        """Final test accuracy (mean ± std over seeds) of both sides per experiment, their
        difference and each side's verdict, as a table figure.

        Returns:
            A matplotlib figure.
        """
        return _closed(plots.summary_table_figure(self.summary, self.verdicts))

    def __repr__(self) -> str:
        config = self.results["configuration"]
        return (f"Report {self.directory}: {len(self.results['runs'])} runs "
                f"({', '.join(self.models)}; {config['seeds']} seed(s); "
                f"{config['protocol']['dtype']}, {config['protocol']['data']}). "
                f"{self.results['report']['text']['summary']}.")

    def _repr_html_(self) -> str:
        text = self.results["report"]["text"]
        figures = self.figures
        parts = [f"<h3>Report {html.escape(str(self.directory))}</h3>",
                 f"<p>Produced by <code>{html.escape(self.results['command'])}</code>: "
                 f"{markdown_html(text['summary'])}.</p>",
                 f"<p><b>Protocol.</b> {markdown_html(text['protocol'])}</p>"]
        answers = self.answers
        for index, question in enumerate(QUESTIONS):
            items = "".join(f"<li><b>{html.escape(model)}</b>: {markdown_html(answer)}</li>"
                            for model, answer in answers[question].items())
            parts.append(f"<h4>{html.escape(question)}</h4><ul>{items}</ul>")
            if index == 0:  # the timing table and its conditions, as report.md prints them
                parts += [markdown_table_html(block) if block.startswith("|") else
                          f"<p>{markdown_html(block)}</p>" for block in text["timing"]
                          if block and not block.startswith("![")]
            parts += [image_html(path) for stem, path in figures.items()
                      if FIGURES.get(stem) == index]
        parts += ["<h4>Experiment table</h4>", self.experiments.to_html(index=False),
                  f"<p>{markdown_html(text['rules'])}</p>",
                  f"<p><b>Machine and software.</b> {markdown_html(text['machine'])}</p>"]
        return '<div class="tfparity-report">' + "".join(parts) + "</div>"


ANSWER = re.compile(r"^- \*\*(\w+)\*\*: (.+)$")


def answers_of(report_md: Path) -> dict[tuple[int, str], str]:
    """(question index, model) -> the answer line of report.md: the "- **model**: ..." lines
    under the first, second and third "## " headings (the report's questions, in order)."""
    found, question = {}, -1
    for line in report_md.read_text().splitlines():
        if line.startswith("## "):
            question += 1
        match = ANSWER.match(line)
        if match and 0 <= question < len(QUESTIONS):
            found[(question, match.group(1))] = match.group(2)
    return found


def load_report(directory) -> Report:
    """Open the finished report in ``directory`` (``tfparity report --out DIR``)."""
    return Report(directory)


def _closed(figure):
    """The figure out of pyplot's list of open figures: a notebook shows it once, as the
    value of its cell."""
    import matplotlib.pyplot as plt

    plt.close(figure)
    return figure


def markdown_html(text: str) -> str:
    """The inline Markdown of the report's sentences (**bold**, `code`) as HTML, escaped."""
    escaped = html.escape(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)


def markdown_table_html(table: str) -> str:
    """A GitHub Markdown table (header, rule, rows) as an HTML table."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in table.strip().splitlines()]
    head = "".join(f"<th>{markdown_html(cell)}</th>" for cell in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{markdown_html(cell)}</td>" for cell in row) + "</tr>"
                   for row in rows[2:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def image_html(path: Path, width: int = INLINE_WIDTH) -> str:
    """A PNG file as an inline ``<img>``, shrunk to ``width`` pixels if wider, in 64 colours."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    buffer = io.BytesIO()  # 64 colours: a quarter of the bytes, the plots' colours kept
    image.quantize(colors=64).save(buffer, format="PNG", optimize=True)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<p><img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}" '
            f'style="max-width:100%"/></p>')
