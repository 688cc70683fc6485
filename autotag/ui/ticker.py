"""A refresh clock for live page parts that stops while the browser tab is hidden.

`st.fragment(run_every=...)` reruns on a plain timer in the browser, visible or not: a
viewer who left the Runs page in a background tab cost the server as much as one
watching. This clock asks for the next rerun only when the page is visible, one interval
after its part was last drawn (never while a rerun is still on its way), and at once
when a hidden tab is shown again.
"""

from __future__ import annotations

import streamlit as st

_JS = """
export default function (component) {
  const { data, setTriggerValue, parentElement } = component;
  // Streamlit runs this again on every new `data` but calls the cleanup returned only on
  // unmount: the previous draw's timer and listener are ended here, kept on the element.
  parentElement.__autotagClockEnd?.();
  const ms = Math.max(250, 1000 * data.interval_s);
  const tick = () => {
    if (document.visibilityState === "visible") setTriggerValue("tick", data.drawn);
  };
  const shown = () => { if (document.visibilityState === "visible") tick(); };
  const timer = setTimeout(tick, ms);
  document.addEventListener("visibilitychange", shown);
  const end = () => {
    clearTimeout(timer);
    document.removeEventListener("visibilitychange", shown);
  };
  parentElement.__autotagClockEnd = end;
  return end;
}
"""

_clock = st.components.v2.component("autotag_refresh_clock", js=_JS)


def refresh_clock(key: str, interval_s: float) -> None:
    """Rerun the calling fragment `interval_s` after this call while its tab is visible.

    Call it last in a fragment: every rerun draws it anew with a new `drawn` count, which
    re-arms the browser's timer, so a slow server gets one request at a time.
    """
    drawn = st.session_state.get(f"{key}_drawn", 0) + 1
    st.session_state[f"{key}_drawn"] = drawn
    _clock(key=key, data={"interval_s": interval_s, "drawn": drawn}, on_tick_change=lambda: None, height=0)
