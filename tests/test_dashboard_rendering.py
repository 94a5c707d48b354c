"""One safe renderer for every string from data (issue 20, finding 9).

Streamlit renders the text of ``st.markdown``, ``st.caption``, ``st.write``, ``st.info`` /
``warning`` / ``error`` / ``success``, titles, headers, metric labels, expander and tab labels
and ``help=`` tooltips as Markdown: an ingested ``![x](http://host/px.png)`` becomes an image
every reader's browser fetches. So every value put into such a text must pass through
``dashboards.ui.safe_md`` (which escapes every Markdown/HTML metacharacter). This test walks
the AST of every module under dashboards/ and fails on a value that does not: an f-string
field, a name, a call or an attribute, unless it is ``safe_md(...)``, a number formatted with
a numeric or date spec (``{x:.2f}``, ``{d:%Y-%m-%d}``; such a spec raises on a string),
``len``/``int``/``float``/``round`` of something, or a call of a module function all of whose
return values are safe. Widget labels and ``help=`` tooltips count too. A name counts as safe when every assignment
to it in the module is safe. The checker is tested on planted breaches first.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "dashboards"

#: Streamlit calls whose text (first argument, or label/body/help) is rendered as Markdown
MARKDOWN_CALLS = frozenset(
    {
        "markdown",
        "caption",
        "write",
        "info",
        "warning",
        "error",
        "success",
        "title",
        "header",
        "subheader",
        "toast",
        "metric",
        "expander",
        "tabs",
        "popover",
        # widget labels render Markdown too
        "button",
        "download_button",
        "text_input",
        "number_input",
        "selectbox",
        "multiselect",
        "radio",
        "checkbox",
        "toggle",
        "slider",
        "date_input",
    }
)
_SAFE = frozenset({"safe_md"})
_NUMBERS = frozenset({"len", "int", "float", "round", "abs"})
_NUMERIC_SPEC = re.compile(r"^[<>=^]?[+\- ]?#?0?\d*[,_]?(\.\d+)?[bdeEfFgGnoxX%]$")


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else None


class _Checker:
    def __init__(self, tree: ast.Module) -> None:
        self.assigned: dict[str, list[ast.expr]] = {}
        self.bound_elsewhere: set[str] = set()  # loop variables, arguments, with/except targets
        self.returns: dict[str, list[ast.expr]] = {}  # module functions -> what they return
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                self.returns[node.name] = [
                    r.value or ast.Constant(None) for r in ast.walk(node) if isinstance(r, ast.Return)
                ]
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                self.assigned.setdefault(node.targets[0].id, []).append(node.value)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                self.assigned.setdefault(node.target.id, []).append(node.value)
            elif isinstance(node, (ast.For, ast.comprehension)):
                self.bound_elsewhere |= {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
            elif isinstance(node, ast.arg):
                self.bound_elsewhere.add(node.arg)
        self._resolving: set[str] = set()

    def unsafe(self, expr: ast.expr) -> list[str]:
        """The parts of ``expr`` that put unescaped data into Markdown."""
        if isinstance(expr, ast.Constant):
            return []
        if isinstance(expr, ast.Call) and _name(expr.func) in _SAFE:
            return []
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id in self.returns:
            return self._resolve(expr.func.id, self.returns[expr.func.id])  # a page's own helper
        if isinstance(expr, ast.JoinedStr):
            bad = []
            for part in expr.values:
                if isinstance(part, ast.FormattedValue):
                    value = part.value
                    if isinstance(value, ast.Call) and _name(value.func) in _SAFE | _NUMBERS:
                        continue
                    spec = "".join(
                        v.value for v in getattr(part.format_spec, "values", []) if isinstance(v, ast.Constant)
                    )
                    if part.conversion == -1 and spec and ("%" in spec or _NUMERIC_SPEC.match(spec)):
                        continue
                    bad += self.unsafe(value)
            return bad
        if isinstance(expr, ast.BinOp):
            return self.unsafe(expr.left) + self.unsafe(expr.right)
        if isinstance(expr, ast.IfExp):
            return self.unsafe(expr.body) + self.unsafe(expr.orelse)
        if isinstance(expr, (ast.List, ast.Tuple)):
            return [b for element in expr.elts for b in self.unsafe(element)]
        if isinstance(expr, ast.ListComp):
            return self.unsafe(expr.elt)
        if isinstance(expr, ast.Name) and expr.id in self.assigned and expr.id not in self.bound_elsewhere:
            return self._resolve(expr.id, self.assigned[expr.id])
        return [ast.unparse(expr)]

    def _resolve(self, name: str, values: list[ast.expr]) -> list[str]:
        """Safe when every value bound to (or returned by) ``name`` is."""
        if name in self._resolving:
            return []
        self._resolving.add(name)
        try:
            return [b for value in values for b in self.unsafe(value)]
        finally:
            self._resolving.discard(name)


def breaches(source: str, filename: str = "<page>") -> list[str]:
    """``file:line: call: expression`` for every unescaped value in a Markdown-rendering call."""
    tree = ast.parse(source)
    checker = _Checker(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        texts = [k.value for k in node.keywords if k.arg == "help"]  # a tooltip, on any call
        if node.func.attr in MARKDOWN_CALLS:
            texts += node.args[:1] + [k.value for k in node.keywords if k.arg in ("label", "body")]
        for text in texts:
            found += [f"{filename}:{node.lineno}: {node.func.attr}: {bad}" for bad in checker.unsafe(text)]
    return found


def test_the_checker_catches_each_way_data_reaches_markdown_and_passes_escaped_text() -> None:
    planted = {
        "f-string field": "st.caption(f\"source: {alert.get('source')}\")",
        "bare subscript": 'st.markdown(row["name"])',
        "attribute": "st.error(exc.problem)",
        "concatenation": 'st.info("series " + name)',
        "name bound to data": "text = f\"{row['licence']}\"\nst.write(text)",
        "loop variable": "for title in titles:\n    st.subheader(title)",
        "help tooltip": 'st.button("Go", help=f"{row[\'note\']}")',
        "column container": 'left.metric(f"{level.upper()} alerts", 3)',
        "tab labels": "st.tabs(list(names))",
        "str spec": 'st.caption(f"{name:>10}")',
        "helper returning data": 'def label(r):\n    return r["name"]\nst.markdown(label(row))',
    }
    for what, source in planted.items():
        assert breaches(source), f"the checker missed: {what}"
    clean = (
        "st.caption(f\"source: {ui.safe_md(alert.get('source') or 'n/a')}\")\n"
        "st.markdown(f\"score {alert['score']:.4f} on {alert['ds']:%Y-%m-%d}, {len(rows)} rows\")\n"
        'head = f"Level **{ui.safe_md(level)}**"\n'
        'st.markdown(head + " now")\n'
        "st.tabs([ui.safe_md(t) for t in titles])\n"
        "st.text(f\"{row['name']}\")\n"  # st.text is plain text
        "st.dataframe(frame)\n"
    )
    assert breaches(clean) == []


def test_every_dashboard_module_escapes_data_in_markdown_text() -> None:
    found = []
    for path in sorted(DASHBOARDS.rglob("*.py")):
        found += breaches(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert found == [], "unescaped data in Markdown text (wrap it in ui.safe_md):\n" + "\n".join(found)
