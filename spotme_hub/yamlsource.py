"""YAML loading that remembers where every value came from, so errors can name file and line."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem in a configuration file."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path or '<root>'}: {self.message}"


class ConfigError(Exception):
    """A configuration that cannot be used; `issues` lists every problem found."""

    def __init__(self, issues: Sequence[Issue]):
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


def dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


@dataclass
class Document:
    """A parsed YAML file: plain data plus the position tree for error reporting."""

    file: str
    tree: Any  # ruamel CommentedMap/Seq (positions)
    data: Any  # plain dicts/lists/scalars with ${ENV} resolved
    #: what reading found (an unset ${VAR}): reported with the validation's, not instead of it
    issues: list[Issue] = field(default_factory=list)

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """1-based line of the deepest part of `loc` that exists in the file."""
        node = self.tree
        line: int | None = None
        for part in loc:
            if (
                isinstance(node, CommentedMap)
                and part in node
                or isinstance(node, CommentedSeq)
                and isinstance(part, int)
                and 0 <= part < len(node)
            ):
                pos = node.lc.data.get(part)
                if pos:
                    line = pos[0] + 1
                node = node[part]
            else:
                if line is None and getattr(getattr(node, "lc", None), "line", None) is not None:
                    line = node.lc.line + 1
                break
        return line

    def issue(self, loc: Sequence[str | int], message: str) -> Issue:
        return Issue(self.file, self.line_of(loc), dotted(loc), message)


def _plain(node: Any, loc: list[str | int], doc_file: str, issues: list[Issue], tree: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v, [*loc, str(k)], doc_file, issues, tree) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v, [*loc, i], doc_file, issues, tree) for i, v in enumerate(node)]
    if isinstance(node, str):
        return _interpolate(str(node), loc, doc_file, issues, tree)
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def _interpolate(
    value: str, loc: list[str | int], doc_file: str, issues: list[Issue], tree: Any
) -> str:
    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        doc = Document(doc_file, tree, None)
        issues.append(doc.issue(loc, f"environment variable {name} is not set"))
        return ""

    return _ENV.sub(repl, value) if "${" in value else value


class _Constructor(RoundTripConstructor):
    """Dates and times stay text: the models parse them, so `2025-07-40` is refused with its
    file, line and field (YAML's own timestamp reading would fail without saying where)."""


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", _Constructor.construct_yaml_str)


def load_yaml(path: str | Path) -> Document:
    path = Path(path)
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(
            [Issue(str(path), None, "", f"cannot read file: {exc.strerror}")]
        ) from exc
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        raise ConfigError([Issue(str(path), line, "", f"YAML syntax: {exc.problem}")]) from exc
    if tree is None:
        raise ConfigError([Issue(str(path), None, "", "the file is empty: a configuration needs "
                                 "at least `offices` and `devices` (see configs/example.yaml)")])  # fmt: skip
    issues: list[Issue] = []
    data = _plain(tree, [], str(path), issues, tree)
    return Document(str(path), tree, data, issues)
