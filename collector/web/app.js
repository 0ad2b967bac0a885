// emberwatch status page: renders the collector's /api/v1/events stream.
// No framework, no build step; DOM built with textContent (no HTML injection).
"use strict";
(function () {
  const stageColor = { normal: "var(--normal)", watch: "var(--watch)", warning: "var(--warning)", critical: "var(--critical)", emergency: "var(--emergency)" };
  const $ = (id) => document.getElementById(id);
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function trendText(t) {
    if (t === undefined || t === null) return "";
    const arrow = t > 0.05 ? "↑" : t < -0.05 ? "↓" : "→";
    if (Math.abs(t) < 0.005) t = 0;
    return " " + arrow + (t > 0 ? "+" : "") + t.toFixed(2) + " °C/min";
  }
  function round(v) {
    return Math.round(v * 100) / 100;
  }
  function sigText(s) {
    return s.kind + " " + round(s.value) + (s.unit ? " " + s.unit : "");
  }
  function renderRooms(racks, active) {
    const byID = new Map((active || []).map((a) => [a.id, a]));
    const rooms = new Map();
    for (const r of racks || []) {
      const room = r.room || "(no room)";
      if (!rooms.has(room)) rooms.set(room, new Map());
      const rows = rooms.get(room);
      const row = r.row || "";
      if (!rows.has(row)) rows.set(row, []);
      rows.get(row).push(r);
    }
    const root = $("rooms");
    root.replaceChildren();
    if (rooms.size === 0) root.append(el("p", "none", "no telemetry yet"));
    for (const [room, rows] of rooms) {
      const sec = el("div", "room");
      sec.append(el("h3", "", "room " + room));
      for (const [row, racks] of rows) {
        const line = el("div", "row");
        line.append(el("span", "label", row ? "row " + row : ""));
        for (const r of racks) {
          const t = el("div", "rack s-" + r.stage + (r.stale ? " stale" : ""));
          t.dataset.rack = r.rack;
          t.dataset.stage = r.stage;
          t.title = (r.devices || []).join(", ") + (r.stale ? " (agent silent)" : "");
          t.append(el("div", "name", "rack " + r.rack));
          if (r.hottest) {
            t.append(el("div", "temp", r.hottest.celsius.toFixed(1) + " °C"));
            t.append(el("div", "comp", (r.hottest.component || "battery") + trendText(r.hottest.trend_c_per_min)));
          } else {
            t.append(el("div", "comp", "no temperature"));
          }
          t.append(el("div", "stage", r.stage));
          // The evidence behind the rack's worst alert.
          const alerts = (r.alerts || []).map((id) => byID.get(id)).filter(Boolean);
          alerts.sort((a, b) => stageRank(b.stage) - stageRank(a.stage));
          if (alerts.length > 0) {
            const a = alerts[0];
            t.append(el("div", "sigs", a.category + ": " + (a.signatures || []).map(sigText).join(", ")));
          }
          line.append(t);
        }
        sec.append(line);
      }
      root.append(sec);
    }
  }
  function renderAlerts(active) {
    const ul = $("alerts");
    ul.replaceChildren();
    if (!active || active.length === 0) { ul.append(el("li", "none", "none")); return; }
    for (const a of active) {
      const li = el("li");
      li.dataset.id = a.id;
      li.style.borderColor = stageColor[a.stage] || "#999";
      const head = el("div", "", a.stage.toUpperCase() + " " + a.category + " — " + a.agent + "/" + a.device + (a.component ? " " + a.component : "") + (a.drill ? " (DRILL)" : ""));
      if (a.stage === "critical" || a.stage === "emergency") {
        if (a.acked) {
          li.append(el("span", "chip s-normal", "acked by " + a.acked.by));
        } else {
          const b = el("button", "", "ack");
          b.onclick = () => ack(a.id);
          li.append(b);
        }
      }
      li.append(head);
      if (a.summary) li.append(el("div", "", a.summary));
      for (const s of a.signatures || []) {
        li.append(el("div", "sig", s.kind + " = " + round(s.value) + (s.unit ? " " + s.unit : "") + " (threshold " + round(s.threshold) + ")" + (s.component ? " @" + s.component : "")));
      }
      li.append(el("div", "sig", new Date(a.time).toLocaleString()));
      ul.append(li);
    }
  }
  function renderAgents(agents) {
    const tb = $("agents").tBodies[0];
    tb.replaceChildren();
    for (const a of agents || []) {
      const tr = el("tr");
      const name = a.version === "ember-collector" ? a.agent + " (collector)" : a.agent;
      tr.append(el("td", "", name), el("td", "", new Date(a.last_heartbeat).toLocaleTimeString()),
        el("td", a.silent ? "silent" : "", a.silent ? "SILENT" : "ok"));
      tb.append(tr);
    }
  }
  function stageRank(st) {
    return ["normal", "watch", "warning", "critical", "emergency"].indexOf(st);
  }
  function render(s) {
    $("site").textContent = s.site;
    renderRooms(s.racks, s.active_alerts);
    renderAlerts(s.active_alerts);
    renderAgents(s.agents);
    $("updated").textContent = "updated " + new Date(s.time).toLocaleTimeString();
    document.body.dataset.version = String((Number(document.body.dataset.version) || 0) + 1);
  }
  async function ack(id) {
    const by = window.prompt("Acknowledge " + id + " as (your name):");
    if (!by) return;
    const note = window.prompt("Note (optional):") || "";
    const send = () => {
      const h = { "Content-Type": "application/json" };
      const tok = window.sessionStorage.getItem("emberToken");
      if (tok) h["Authorization"] = "Bearer " + tok;
      return fetch("api/v1/ack", { method: "POST", headers: h, body: JSON.stringify({ id, by, note }) });
    };
    let r = await send();
    if (r.status === 401) { // the collector has an http.token
      const tok = window.prompt("This collector needs its API token to acknowledge:");
      if (!tok) return;
      window.sessionStorage.setItem("emberToken", tok);
      r = await send();
    }
    if (!r.ok) window.alert("ack failed: " + (await r.text()));
  }
  function connect() {
    const es = new EventSource("api/v1/events");
    es.addEventListener("state", (ev) => { render(JSON.parse(ev.data)); });
    es.onopen = () => { $("conn").textContent = "live"; $("conn").className = "conn on"; };
    es.onerror = () => { $("conn").textContent = "reconnecting…"; $("conn").className = "conn off"; };
  }
  connect();
})();
