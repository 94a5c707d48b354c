"""Guardrails for text that reaches a prompt: injection screening, fencing, confidentiality.

Pure functions (no network, no clock). Contract:

- :func:`screen_text` decides whether one free-text field (a place name, station note, CSV
  comment, incoming CAP description) may reach a prompt. Two layers:

  1. hard rules that block on their own: chat-template tokens (``<|im_start|>``, ``[INST]``,
     ``<<SYS>>``, ...) and control / bidirectional-override characters, which no data field
     of this engine carries;
  2. a learned score (:mod:`alerts.injection_model`): hashed character and word n-grams plus
     the names of the phrase rules below that matched (logistic regression, numpy inference
     from the shipped ``alerts/models/injection_screen.npz``), and with ``screen =
     "rules+model+semantic"`` (the default) that score stacked with a logistic regression on
     the text's all-MiniLM-L6-v2 sentence embedding; the text is blocked when the score reaches
     the threshold stored with the weights for that screen. The phrase rules (override phrases
     such as "ignore previous instructions", role changes, prompt or secret extraction, output
     hijacks, requests addressed to an assistant, code, encoded payloads; Chinese and the
     corpora's other languages) are evidence for the model: it learned how much each is worth
     on the training rows. Those that matched no benign training row and at least 2 attack
     rows (``decisive_rule_tags`` in the weights' meta) block on their own.

  The text is normalised first (Unicode NFKC, zero-width characters removed, case folded).
  Without the weights file the screen falls back to the phrase rules alone (each match
  blocks, as in ``screen-v1``) and warns; without the sentence encoder the semantic screen
  runs as ``rules+model`` and warns. :func:`screen_texts` screens a batch.
  ``benchmarks/injection.py`` measures it on rows not used for training.
- :func:`withhold` screens every free-text field of an evidence bundle and returns the view
  that may be shown or published: a blocked field is replaced by :data:`WITHHELD` (a neutral
  label) and an event says which field, why, and the SHA-256 of the text withheld. The
  caller keeps the original (the warehouse holds it intact) and logs the events; the prompt,
  the stored judgment and the CAP message are all built from the view.
- :func:`fence` wraps screened data in a per-call random marker; the system prompt says
  everything between the markers is data, never instructions.
- :func:`redact` replaces every evidence field whose classification is above the endpoint's
  clearance, and says which fields it replaced (the caller logs them).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from alerts.injection_model import InjectionModel, load_model, semantic_available
from core.frames import Classification
from core.settings import INJECTION_SCREENS

__all__ = [
    "Screen",
    "screen_text",
    "screen_texts",
    "rule_hits",
    "withhold",
    "WITHHELD",
    "fence",
    "redact",
    "FREE_TEXT_FIELDS",
    "SCREEN_VERSION",
    "SCREENS",
]

SCREEN_VERSION = "screen-v5"
SCREENS = INJECTION_SCREENS  # the values of [guardrails] screen, weakest first

#: Evidence fields holding free text from sources (screened before any prompt).
FREE_TEXT_FIELDS = ("name", "region", "source", "unit", "note", "cap_description")

_ZERO_WIDTH = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff\u00ad]")


@dataclass(frozen=True)
class Screen:
    allowed: bool
    text: str  # the text to use in a prompt (a notice when blocked)
    reasons: tuple[str, ...]


# Each rule: (name, compiled pattern). Patterns run on the normalised, case-folded text.
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(p, re.S))
    for name, p in (
        (
            "override",
            r"\b(ignore|disregard|forget|skip|override|bypass|neglect|abandon|drop|discard)\b.{0,40}"
            r"\b(previous|prior|above|earlier|preceding|all|any|your|the|these|those|initial|original|system)\b.{0,30}"
            r"\b(instruction|instructions|rules?|prompts?|directions?|guidelines?|context|constraints?|orders?|commands?|programming|settings)\b",
        ),
        (
            "override",
            r"\b(new|updated|revised|real|actual|secret|hidden|additional)\s+(instructions?|task|rules?|directive|objective)s?\b",
        ),
        ("override", r"\b(instead|rather)\b.{0,30}\b(say|print|output|respond|reply|write|answer|return|tell)\b"),
        ("override", r"\bdo not (follow|obey|listen|adhere)\b|\bdon'?t (follow|obey)\b|\bstop being\b"),
        ("override", r"\b(from now on|henceforth|for the rest of (this|the) conversation|starting now)\b"),
        # "ignore the above" as a whole instruction (end, punctuation, "and", or repeated), not
        # "disregard the previous bulletin" (a CAP correction names what it supersedes)
        (
            "override",
            r"\b(ignore|disregard|forget)\s+(all\s+|everything\s+)?(the\s+)?(above|previous|prior|preceding)"
            r"\s*([.,;:!]|$|and\b|(ignore|disregard|forget)\b)",
        ),
        (
            "role",
            r"\byou\s+(are|r)\s+(now|no longer|going to be|a|an|my)\b|\byou'?re now\b|\bact(ing)? as\b|\bpretend\b"
            r"|\broleplay\b|\brole-play\b|\bimpersonate\b|\bsimulate\b|\bplay the role\b|\bin character\b",
        ),
        (
            "role",
            r"\b(dan|stan|dude|aim|jailbreak|jailbroken|developer mode|dev mode|god mode|unfiltered|uncensored"
            r"|no restrictions|without restrictions|no limitations|no filters?|no ethical|amoral)\b",
        ),
        (
            "extraction",
            r"\b(system|initial|original|hidden|secret|previous|above)\s+(prompt|message|instructions?|text|password|key|code)\b",
        ),
        (
            "extraction",
            r"\b(reveal|repeat|print|show|output|display|disclose|leak|spell|tell me|give me|what is|what's"
            r"|write down)\b.{0,40}"
            r"\b(password|secret|key|access code|prompt|instructions?|rules|passcode|token|credentials?)\b",
        ),
        ("hijack", r"access granted|\bhaha\b|\bpwned\b|\bi have been\b|\bsay ['\"]|\bprint ['\"]|\boutput ['\"]"),
        (
            "template",
            r"<\|?(im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id)\|?>|\[/?inst\]|<</?sys>>"
            r"|^\s*(system|assistant|user)\s*:|###\s*(instruction|system|response)|\[system\]|\{\{|\}\}",
        ),
        (
            "addressed",
            r"^\s*(please\s+)?(write|compose|draft|create|generate|produce|provide|give|list|explain|describe|summari[sz]e|"
            r"translate|tell|show|add|ensure|include|insert|make|send|rewrite|convert|encode|decode|answer|respond|reply|"
            r"output|print|repeat|ignore|forget|pretend|imagine|act|role|suggest|recommend|calculate|find|search|"
            r"help|teach|design|develop|build|plan|analy[sz]e|classify|identify|determine|predict|share|post|"
            r"create|invent|name|can you|could you|would you|will you|i want you|i need you|let'?s|you must|"
            r"you will|you should)\b",
        ),
        (
            "addressed",
            r"\b(can|could|would|will)\s+you\b|\bi want you\b|\bi need you\b"
            r"|\byou (must|will|should|shall|have to|need to)\b"
            r"|\byour (task|job|goal|response|answer|reply|output|instructions?)\b"
            r"|\bin your (response|answer|reply|output)\b",
        ),
        ("addressed", r"\?\s*$"),
        (
            "code",
            r"```|\bimport\s+\w+|\bdef\s+\w+\(|\beval\(|\bexec\(|<script|\bcurl\s+|\bwget\s+|\brm\s+-rf\b|\bos\.system\b|subprocess",
        ),
        (
            "encoded",
            r"\b(base64|rot13|hex|caesar|cipher|encode[ds]?|decode[ds]?|reverse(d)? (text|order|the)|backwards"
            r"|emoji|binary|morse)\b",
        ),
        ("encoded", r"[a-z0-9+/]{40,}={0,2}"),
        # override phrases (忽略/忘记 alone also mean "neglect"/"forget to": 忘记关闭闸门 is data)
        (
            "zh",
            r"(忽略|无视|忘记|忘掉|不要理会)(之前|以上|上面|前面|上述|所有|全部|你的|先前)|之前的(指令|指示|说明|规则)"
            r"|系统提示|你现在是|不要遵守|新的指令|泄露(密码|口令|提示|指令|系统)",
        ),
        ("zh", r"密码|口令|输出|翻译|请写|写一|告诉我|扮演|假装|泄露"),
        (
            "multilingual",
            r"ignor[ae]|oubli|olvid|vergiss|ignorier|dimentic|esqueç|забуд|игнор|инструкц|пароль|секрет|"
            r"無視|忘れ|指示|パスワード|秘密|무시|잊어|지시|비밀|암호|अनदेखा|भूल|निर्देश|पासवर्ड|गुप्त|"
            r"تجاهل|انس|تعليمات|كلمة المرور|سر|unut|talimat|şifre|gizli|bỏ qua|quên|hướng dẫn|mật khẩu|bí mật|"
            r"abaikan|lupakan|instruksi|kata sandi|rahasia|ละเว้น|ลืม|คำสั่ง|รหัสผ่าน|ความลับ|kalimutan|huwag pansinin|"
            r"tagubilin|lihim|ভুলে|উপেক্ষা|নির্দেশ|পাসওয়ার্ড|গোপন|instruccion|instructions précédentes|anweisung",
        ),
    )
)


#: Structural markers no data field carries: blocked on their own, whatever the model says.
_HARD_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "template",
        re.compile(
            r"<\|?(im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id)\|?>"
            r"|\[/?inst\]|<</?sys>>"
        ),
    ),
    ("control", re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")),
)
_NOTICE = "[text withheld: it reads as instructions, not data]"
#: What a blocked field shows in a prompt, a judgment and a CAP message.
WITHHELD = _NOTICE


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = _ZERO_WIDTH.sub("", text)
    return text.casefold()


def rule_hits(text: str) -> tuple[str, ...]:
    """Tags (``name.k``: the k-th pattern of rule ``name``) of the phrase rules matching ``text``.

    These are the rule features of the learned screen; the training script calls this too."""
    norm = _normalise(text)
    tags: list[str] = []
    seen: dict[str, int] = {}
    for name, pattern in _RULES:
        k = seen[name] = seen.get(name, -1) + 1
        if pattern.search(norm):
            tags.append(f"{name}.{k}")
    return tuple(tags)


@lru_cache(maxsize=1)
def _model() -> InjectionModel | None:
    try:
        return load_model()
    except (FileNotFoundError, ValueError) as exc:
        warnings.warn(f"injection screen runs on phrase rules only (each match blocks): {exc}", stacklevel=3)
        return None


def screen_text(text: str | None, *, max_chars: int = 400, screen: str = "rules") -> Screen:
    """Decide whether ``text`` may reach a prompt; see the module docstring and :func:`screen_texts`."""
    return screen_texts([text], max_chars=max_chars, screen=screen)[0]


def screen_texts(
    texts: list[str | None], *, max_chars: int = 400, screen: str = "rules", model: InjectionModel | None = None
) -> list[Screen]:
    """Decide for each text whether it may reach a prompt (one batch through the encoder).

    ``screen`` is one of :data:`SCREENS` (``[guardrails] screen``): ``rules`` (every phrase-rule
    match blocks), ``rules+model`` (hard rules, decisive rules, the n-gram score),
    ``rules+model+semantic`` (the same with the n-gram and sentence-embedding scores stacked;
    if the encoder cannot load it warns once and runs as ``rules+model``).
    A blocked verdict's ``reasons`` name what fired: hard rules, ``model 0.987`` or
    ``semantic 0.987`` (the score) and the phrase rules that matched. An allowed verdict
    carries only a ``length`` reason when the text was cut to ``max_chars``. ``model`` replaces
    the shipped weights (benchmarks pass layers fitted in memory); the decision rule is the same."""
    if screen not in SCREENS:
        raise ValueError(
            f"unknown injection screen {screen!r}; use one of {', '.join(SCREENS)} ([guardrails] screen in ews.toml)"
        )
    semantic = False
    if screen == "rules":
        model = None
    elif model is None:
        model = _model()
        semantic = model is not None and screen == "rules+model+semantic" and _semantic_ready()
    else:
        semantic = screen == "rules+model+semantic" and model.has_semantic and semantic_available() is None
    heads = [str(t)[: max_chars * 4] for t in texts if t is not None]
    tags_all = [rule_hits(h) for h in heads]
    scores = iter(model.semantic_scores(heads, tags_all).tolist() if model is not None and semantic and heads else ())
    out: list[Screen] = []
    k = 0
    for text in texts:
        if text is None:
            out.append(Screen(True, "", ()))
            continue
        raw, head, tags = str(text), heads[k], tags_all[k]
        k += 1
        reasons: list[str] = [f"length {len(raw)} > {max_chars}"] if len(raw) > max_chars else []
        norm = _normalise(head)
        hard = [name for name, pattern in _HARD_RULES if pattern.search(head) or pattern.search(norm)]
        names = list(dict.fromkeys(tag.split(".")[0] for tag in tags))
        if model is None:
            why = hard + names
        else:
            if semantic:
                score, threshold, label = next(scores), model.semantic_threshold, "semantic"
            else:
                score, threshold, label = model.score(head, tags), model.threshold, "model"
            decisive = [tag for tag in tags if tag in model.decisive_tags]
            blocked = bool(hard or decisive) or score >= threshold
            why = hard + [f"{label} {score:.3f}"] + names if blocked else []
        if why:
            out.append(Screen(False, _NOTICE, tuple(reasons + why)))
            continue
        clean = (
            _normalise(raw)[:max_chars]
            if len(raw) > max_chars
            else unicodedata.normalize("NFKC", _ZERO_WIDTH.sub("", raw))
        )
        out.append(Screen(True, clean, tuple(reasons)))
    return out


@lru_cache(maxsize=1)
def _semantic_ready() -> bool:
    """Whether the shipped weights have a semantic layer and the encoder loads (checked once)."""
    model = _model()
    problem = None if model is not None and model.has_semantic else "the shipped weights have no semantic layer"
    problem = problem or semantic_available()
    if problem:
        warnings.warn(f"injection screen runs without its semantic layer (as rules+model): {problem}", stacklevel=4)
    return problem is None


def withhold(
    evidence: dict[str, Any], *, max_chars: int = 400, screen: str = "rules"
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The evidence as it may be shown (blocked free-text fields replaced by :data:`WITHHELD`,
    the others as the screen cleaned them) and one event per field the screen blocked or cut:
    ``field``, ``allowed``, ``reasons``, ``chars`` and the ``sha256`` of the original text, so
    the log can name what was withheld without repeating it. ``evidence`` is not changed."""
    view = dict(evidence)
    keys = [key for key in FREE_TEXT_FIELDS if isinstance(view.get(key), str)]
    events: list[dict[str, Any]] = []
    for key, verdict in zip(
        keys, screen_texts([view[k] for k in keys], max_chars=max_chars, screen=screen), strict=True
    ):
        if not verdict.allowed or verdict.reasons:
            raw = str(evidence[key])
            events.append(
                {
                    "field": key,
                    "allowed": verdict.allowed,
                    "reasons": list(verdict.reasons),
                    "chars": len(raw),
                    "sha256": hashlib.sha256(raw.encode("utf-8")).hexdigest(),
                }
            )
        view[key] = verdict.text
    return view, events


def fence(payload: str, nonce: str) -> str:
    """Wrap data between markers a source cannot guess (``nonce`` is random per call)."""
    marker = f"DATA-{nonce}"
    cleaned = payload.replace(marker, "")  # a payload cannot close the fence early
    return f"<<{marker}>>\n{cleaned}\n<<END-{marker}>>"


def redact(evidence: dict[str, Any], *, cleared: str) -> tuple[dict[str, Any], list[str]]:
    """Copy of ``evidence`` with values above ``cleared`` replaced; returns it and the fields.

    ``evidence['classification']`` is the series' level. Above the clearance, every measured
    value (value, forecast, scores, thresholds, the basis of the grade with its crossing
    probabilities and threshold values, group member scores) is withheld; names and levels stay, because
    the alert itself is being released at that level of detail.
    """
    level = Classification.parse(evidence.get("classification") or "public")
    limit = Classification.parse(cleared)
    if level <= limit:
        return dict(evidence), []
    out = dict(evidence)
    replaced = []
    notice = f"[redacted: {level.name.lower()} data, endpoint cleared for {limit.name.lower()}]"
    for key in ("value", "forecast", "score", "threshold", "group_members", "note", "basis"):
        if out.get(key) is not None:
            out[key] = notice
            replaced.append(key)
    return out, replaced
