// keel dashboard: live updates by polling the JSON API. No libraries, no innerHTML:
// everything an agent wrote is inserted as text.
"use strict";

(function () {
  const RUN_POLL_MS = 2000;
  const RUNS_POLL_MS = 5000;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function duration(ms) {
    if (ms === null || ms === undefined) return "";
    return ms >= 1000 ? (ms / 1000).toFixed(2) + " s" : ms.toFixed(ms < 10 ? 1 : 0) + " ms";
  }

  function timelineRow(ev) {
    const li = el("li", "node fresh kind-" + ev.kind + (ev.status === "failed" ? " failed" : ""));
    li.setAttribute("data-testid", "timeline-node");
    li.dataset.type = ev.type;
    li.dataset.seq = ev.seq;
    li.dataset.live = "1";
    const details = el("details");
    const summary = el("summary");
    summary.append(el("span", "offset mono", "+" + ev.offset_ms.toFixed(1) + " ms"));
    summary.append(el("span", "type", ev.type));
    summary.append(el("span", "name", ev.name));
    if (ev.duration_ms !== null) summary.append(el("span", "dur", duration(ev.duration_ms)));
    if (ev.status) summary.append(el("span", "status status-" + ev.status, ev.status));
    if (ev.summary) summary.append(el("span", "summary", ev.summary));
    details.append(summary);
    const keys = Object.keys(ev.attributes || {});
    if (keys.length) {
      const dl = el("dl", "attrs");
      for (const key of keys) {
        dl.append(el("dt", null, key));
        dl.append(el("dd", null, ev.attributes[key]));
      }
      details.append(dl);
    }
    li.append(details);
    return li;
  }

  function pollRun(head) {
    const url = head.dataset.events;
    const timeline = document.querySelector("[data-testid=timeline]");
    const empty = document.querySelector("[data-testid=timeline-empty]");
    async function tick() {
      let data;
      try {
        const response = await fetch(url + "?after=" + encodeURIComponent(head.dataset.after), {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        });
        if (!response.ok) throw new Error("HTTP " + response.status);
        data = await response.json();
      } catch (err) {
        setTimeout(tick, RUN_POLL_MS * 2);
        return;
      }
      for (const ev of data.events) timeline.append(timelineRow(ev));
      if (data.events.length && empty) empty.hidden = true;
      head.dataset.after = data.next_after;
      const status = document.querySelector("[data-testid=run-status]");
      if (status) {
        status.textContent = data.status;
        status.className = "status status-" + data.status;
      }
      head.dataset.status = data.status;
      if (data.live || data.more) {
        setTimeout(tick, data.more ? 0 : RUN_POLL_MS);
      } else {
        const live = document.querySelector("[data-testid=live-indicator]");
        if (live) live.hidden = true;
      }
    }
    setTimeout(tick, RUN_POLL_MS);
  }

  function pollRuns(table) {
    const indicator = document.querySelector("[data-testid=runs-live]");
    function running() {
      return table.querySelector("tr[data-status=running]") !== null;
    }
    async function tick() {
      if (!running()) {
        if (indicator) indicator.hidden = true;
        return;
      }
      try {
        const response = await fetch(table.dataset.poll, { credentials: "same-origin" });
        if (response.ok) {
          const data = await response.json();
          for (const run of data.runs) {
            const row = table.querySelector('tr[data-run-id="' + CSS.escape(run.run_id) + '"]');
            if (!row) continue;
            row.dataset.status = run.status;
            const cell = (name) => row.querySelector("[data-field=" + name + "]");
            cell("status").textContent = run.status;
            cell("status").className = "status status-" + run.status;
            cell("duration").textContent = run.duration_ms === null ? "-" : duration(run.duration_ms);
            cell("failures").textContent = run.failure_count;
            cell("recovery").textContent = run.failure_count ? Math.round(run.recovery_rate) + "%" : "-";
            cell("events").textContent = run.event_count;
          }
        }
      } catch (err) {
        /* try again on the next tick */
      }
      setTimeout(tick, RUNS_POLL_MS);
    }
    if (running()) {
      if (indicator) indicator.hidden = false;
      setTimeout(tick, RUNS_POLL_MS);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    const head = document.querySelector("[data-testid=run-head][data-events]");
    if (head) pollRun(head);
    const table = document.querySelector("[data-testid=runs-table][data-poll]");
    if (table) pollRuns(table);
  });
})();
