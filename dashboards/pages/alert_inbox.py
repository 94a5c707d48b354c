"""Alert inbox: alerts with their evidence, judgment (AI label, check verdicts), transitions,
review actions by role, and the CAP XML download."""

from __future__ import annotations

import json
from datetime import timedelta

import streamlit as st

from alerts.permissions import AuthorizationError, allowed, minimum_role
from core.errors import TransitionError
from core.vocabulary import WARNING_LEVEL_NAMES, AlertStatus, Domain, Verdict
from dashboards import actions, auth, context, ui
from warehouse.review_inbox import read_inbox

session = auth.guard("pages.read")
ui.risk_notice()
st.title("Alert inbox")

with st.container(border=True):
    c1, c2, c3 = st.columns(3)
    statuses = c1.multiselect(
        "Status", list(AlertStatus.values()), default=[AlertStatus.OPEN.value], key="inbox_status"
    )
    level_filter = c2.multiselect("Level", list(WARNING_LEVEL_NAMES[::-1]), key="inbox_level")
    domain = c3.selectbox("Domain", ["all", *Domain.values()], key="inbox_domain")
filters = {
    "statuses": tuple(statuses) or None,
    "levels": tuple(level_filter) or None,
    "domain": None if domain == "all" else domain,
}
total = context.read("count_alerts", **filters)
limit, offset = ui.pager(total, key="inbox_page")
page = context.read("alerts_page", **filters, limit=limit, offset=offset)
st.dataframe(page, hide_index=True)
if page.height == 0:
    st.info("No alerts match these filters.")
    st.stop()

labels = {
    r["alert_id"]: f"[{r['level'].upper()}] {r['name'] or r['unique_id']} · {r['status']}"
    f"{' · ' + r['release_state'] if r['release_state'] else ''} · {r['alert_id']}"
    for r in page.iter_rows(named=True)
}
alert_id = st.selectbox("Alert", list(labels), format_func=labels.__getitem__, key="inbox_alert")
alert = context.read("alert_row", alert_id=alert_id)
if alert is None:
    st.error(f"Alert {ui.safe_md(alert_id)} is not in the current snapshot.")
    st.stop()

st.subheader(f"{ui.safe_md(alert['level'].upper())} · {ui.safe_md(alert['hazard'].replace('_', ' '))}")
st.markdown(
    f"**{ui.safe_md(alert['name'] or alert['unique_id'])}** · region "
    f"{ui.safe_md(alert['region'] or 'n/a')} · status **{ui.safe_md(alert['status'])}** · "
    f"release **{ui.safe_md(alert.get('release_state') or 'n/a')}** · observed "
    f"{alert['ds']:%Y-%m-%d} · "
    + (f"score {alert['score']:.4f}" if alert["score"] is not None else "score withheld (above your clearance)")
)
evidence_col, judgment_col = st.columns(2)
with evidence_col:
    st.markdown("**Evidence**")
    st.json(json.loads(alert["evidence"]) if isinstance(alert["evidence"], str) else alert["evidence"])
    st.caption(
        f"source: {ui.safe_md(alert.get('source') or 'n/a')} · licence: {ui.safe_md(alert.get('licence') or 'n/a')}"
    )
with judgment_col:
    st.markdown("**Judgment**")
    judgments = context.read("alert_judgments", alert_id=alert_id)
    if judgments.height == 0:
        st.info("No judgment written for this alert.")
    else:
        j = judgments.row(0, named=True)
        st.warning(ui.safe_md(j["label"]), icon=":material/smart_toy:")
        st.markdown(ui.safe_md(j["text_en"]))
        st.markdown(ui.safe_md(j["text_zh"]))
        st.caption(
            f"writer {ui.safe_md(j['writer'])} · model {ui.safe_md(j['model'] or 'n/a')} · "
            f"prompt {ui.safe_md(j['prompt_version'])} · evidence hash {ui.safe_md(j['evidence_hash'][:16])}…"
        )
        st.markdown("Check verdicts")
        st.json(json.loads(j["checks"]) if j["checks"] else {})

st.markdown("**History of transitions**")
transitions = context.read("alert_transitions", alert_id=alert_id)
if transitions.height:
    st.dataframe(transitions, hide_index=True)
else:
    st.caption("No transitions recorded.")
feedback = context.read("alert_feedback", alert_id=alert_id)
if feedback.height:
    st.markdown("**Feedback**")
    st.dataframe(feedback, hide_index=True)

cap = context.read("alert_cap_messages", alert_id=alert_id)
if cap.height:
    newest = cap.row(0, named=True)
    # The bytes reach Streamlit's file server only for a role that may download them: a
    # disabled button would still hand the file to the browser.
    if newest["xml"] is None:  # dashboards.clearance withheld it: the series is above the viewer's clearance
        st.caption("CAP download withheld: this series is classified above your clearance.")
    elif allowed(session.role, "cap.download"):
        st.download_button(
            "Download CAP XML",
            data=newest["xml"].encode("utf-8"),
            file_name=f"{newest['identifier']}.xml",
            mime="application/xml",
            key="cap_download",
        )
    else:
        st.caption("CAP download needs a role with cap.download.")
    st.caption(
        f"CAP {ui.safe_md(newest['msg_type'])} {ui.safe_md(newest['identifier'])} ({ui.safe_md(newest['status'])}, "
        f"{'valid' if newest['valid'] else 'INVALID'} against the CAP 1.2 schema)"
    )
else:
    st.caption("No CAP message rendered for this alert yet (released alerts get one from the relay).")

st.subheader("Review")
last = st.session_state.pop("ews_last_outcome", None)
if last:
    show = {"applied": st.success, "refused": st.error, "queued": st.info}[last["state"]]
    show(last["text"])


def _run(action: str, **payload: object) -> None:
    """Submit on the server; remember the outcome for the rerun that follows."""
    try:
        outcome = actions.submit(action, alert_id=alert_id, **payload)
    except (AuthorizationError, TransitionError) as exc:
        st.session_state["ews_last_outcome"] = {"state": "refused", "text": str(exc)}
        return
    text = {
        "applied": f"{action}: applied.",
        "refused": f"{action}: refused: {outcome.message}",
        "queued": f"{action}: queued. {outcome.message}",
    }[outcome.state]
    st.session_state["ews_last_outcome"] = {"state": outcome.state, "text": text}


def _hint(permission: str) -> str | None:
    if allowed(session.role, permission):
        return None
    return ui.safe_md(f"needs {minimum_role(permission).replace('_', ' ')} or above")


a1, a2, a3 = st.columns(3)
with a1:
    note = st.text_input("Note (acknowledge / feedback)", key="review_note")
    if st.button(
        "Acknowledge",
        key="do_acknowledge",
        help=_hint("alert.acknowledge"),
        disabled=_hint("alert.acknowledge") is not None,
    ):
        _run("acknowledge", note=note)
        st.rerun()
    verdict = st.radio("Verdict", list(Verdict.values()), horizontal=True, key="review_verdict")
    if st.button(
        "Mark verdict", key="do_feedback", help=_hint("alert.feedback"), disabled=_hint("alert.feedback") is not None
    ):
        _run("feedback", verdict=verdict, note=note)
        st.rerun()
with a2:
    if st.button(
        "Approve release",
        key="do_approve",
        type="primary",
        help=_hint("alert.approve"),
        disabled=_hint("alert.approve") is not None,
    ):
        _run("approve")
        st.rerun()
    reason = st.text_input("Reason (reject / silence)", key="review_reason")
    if st.button(
        "Reject release", key="do_reject", help=_hint("alert.reject"), disabled=_hint("alert.reject") is not None
    ):
        _run("reject", reason=reason)
        st.rerun()
with a3:
    hours = st.number_input("Silence for hours", min_value=1, max_value=24 * 14, value=6, key="silence_hours")
    if st.button("Silence", key="do_silence", help=_hint("alert.silence"), disabled=_hint("alert.silence") is not None):
        _run("silence", reason=reason, until=context.now() + timedelta(hours=int(hours)))
        st.rerun()

mine = read_inbox(context.control(), alert_id=alert_id, kind="review", limit=20)
if mine.height:
    st.markdown("**Review actions on this alert (inbox)**")
    st.dataframe(mine.select("acted_at", "user", "action", "state", "message", "applied_at"), hide_index=True)
    if (mine["state"] == "queued").any():
        st.info("Queued actions are applied as soon as the engine releases the warehouse.")
