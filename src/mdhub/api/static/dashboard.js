// mdhub operations dashboard: polls the overview and draws it with inline SVG. No dependencies.
(function () {
  "use strict";

  const SVG_NS = "http://www.w3.org/2000/svg";
  const STAGES = [
    { key: "source", label: "Source in", note: "candidate changes" },
    { key: "golden", label: "Golden", note: "golden versions" },
    { key: "changes", label: "Changes", note: "change events" },
    { key: "rejected", label: "Rejected", note: "rejected inputs" },
  ];
  const STATUS_VARS = {
    OK: "--ok", WARN: "--warn", REWIND: "--rewind", STALL: "--stall", STOP: "--stop", ERR: "--err",
  };
  const HISTORY_S = 600; // the rolling history kept in the page
  const MIN_SPAN_S = 30; // the narrowest time axis of a chart
  const TIME_STEPS = [5, 10, 15, 30, 60, 120, 300, 600]; // seconds between time-axis ticks

  const body = document.body;
  const OVERVIEW_URL = body.dataset.overview || "/v1/ops/overview";
  const REFRESH_MS = Math.max(500, Number(body.dataset.refreshMs) || 1500);

  const lagHistory = new Map(); // group -> [{at, lag, lagSeconds}]
  const rateHistory = new Map(); // stage -> [{at, value}]
  const groupCards = new Map(); // group -> card element
  const openFolds = new Set(); // groups whose quiet partitions are shown
  let lastLagAt = null;
  let lastRateAt = null;
  let seeded = false;

  // -- small helpers ---------------------------------------------------------------------------

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, String(value));
    }
    return node;
  }

  function cssColour(status) {
    const name = STATUS_VARS[status] || "--unknown";
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
  }

  function compact(n) {
    if (n === null || n === undefined || !isFinite(n)) return "–";
    const abs = Math.abs(n);
    if (abs >= 1e9) return (n / 1e9).toFixed(abs >= 1e10 ? 0 : 1) + "G";
    if (abs >= 1e6) return (n / 1e6).toFixed(abs >= 1e7 ? 0 : 1) + "M";
    if (abs >= 1e4) return (n / 1e3).toFixed(0) + "k";
    if (abs >= 1e3) return (n / 1e3).toFixed(1) + "k";
    return Number.isInteger(n) ? String(n) : n.toFixed(abs < 10 ? 1 : 0);
  }

  function count(n) {
    return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US");
  }

  function rate(r) {
    if (r === null || r === undefined) return "–";
    if (r === 0) return "0";
    return r < 10 ? r.toFixed(1) : Math.round(r).toLocaleString("en-US");
  }

  function seconds(s) {
    if (s === null || s === undefined) return "–";
    if (s < 10) return s.toFixed(1) + " s";
    if (s < 120) return Math.round(s) + " s";
    if (s < 7200) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " min";
  }

  function percent(x) {
    if (x === null || x === undefined) return "–";
    return (x * 100).toFixed(x < 0.1 ? 1 : 0) + " %";
  }

  function push(series, point) {
    series.push(point);
    const oldest = point.at - HISTORY_S;
    while (series.length && series[0].at < oldest) series.shift();
  }

  // -- charts ----------------------------------------------------------------------------------

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    // tops whose quarters are whole numbers from 10 up (3p, 2p, p, p/2, 3p/10)
    for (const step of [1.2, 2, 4, 8, 12]) {
      if (step * power >= value) return step * power;
    }
    return 12 * power;
  }

  // A line chart of points [{at, value}] over the last HISTORY_S seconds, with axes and a grid.
  function lineChart(points, colour, label) {
    const W = 640, H = 170, L = 52, R = 14, T = 10, B = 24;
    const chart = svg("svg", {
      class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label,
    });
    chart.append(svg("title", { text: label }));
    const end = points.length ? points[points.length - 1].at : Date.now() / 1000;
    const span = Math.min(HISTORY_S, Math.max(MIN_SPAN_S, points.length ? end - points[0].at : 0));
    const start = end - span;
    // whole messages: at least 0..4, so that the grid lines fall on integers
    const top = Math.max(4, niceMax(Math.max(...points.map((p) => p.value), 0) * 1.1));
    const x = (at) => L + ((at - start) / span) * (W - L - R);
    const y = (v) => T + (1 - v / top) * (H - T - B);

    for (let i = 0; i <= 4; i++) {
      const v = (top * i) / 4;
      chart.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      chart.append(svg("text", {
        class: "axis-label", x: L - 6, y: y(v) + 4, "text-anchor": "end", text: compact(v),
      }));
    }
    const step = TIME_STEPS.find((s) => span / s <= 5) || TIME_STEPS[TIME_STEPS.length - 1];
    for (let ago = 0; ago <= span + 1e-6; ago += step) {
      const edge = ago === 0 ? "end" : span - ago < step / 2 ? "start" : "middle";
      chart.append(svg("line", { class: "grid", x1: x(end - ago), x2: x(end - ago), y1: T, y2: H - B }));
      chart.append(svg("text", {
        class: "axis-label", x: x(end - ago), y: H - 6, "text-anchor": edge,
        text: ago === 0 ? "now" : ago < 60 ? `−${ago} s` : `−${ago / 60} min`,
      }));
    }
    if (!points.length) {
      chart.append(svg("text", {
        class: "empty-label", x: (L + W - R) / 2, y: H / 2, "text-anchor": "middle",
        text: "collecting samples …",
      }));
      return chart;
    }
    const coords = points.map((p) => [x(p.at).toFixed(1), y(p.value).toFixed(1)]);
    const line = "M" + coords.map((c) => c.join(",")).join(" L");
    const area = line + ` L${coords[coords.length - 1][0]},${y(0)} L${coords[0][0]},${y(0)} Z`;
    chart.append(svg("path", { class: "area", d: area, fill: colour }));
    chart.append(svg("path", { class: "line", d: line, stroke: colour }));
    const last = coords[coords.length - 1];
    chart.append(svg("circle", { class: "dot", cx: last[0], cy: last[1], r: 4, fill: colour }));
    return chart;
  }

  function sparkline(points, colour) {
    const W = 160, H = 34;
    const node = svg("svg", { class: "spark", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
    if (points.length < 2) return node;
    const end = points[points.length - 1].at;
    const span = Math.max(MIN_SPAN_S, end - points[0].at);
    const top = niceMax(Math.max(...points.map((p) => p.value), 0));
    const coords = points.map((p) => [
      (W - ((end - p.at) / span) * W).toFixed(1),
      (H - 2 - (p.value / top) * (H - 4)).toFixed(1),
    ]);
    const line = "M" + coords.map((c) => c.join(",")).join(" L");
    node.append(svg("path", {
      class: "area", d: line + ` L${coords[coords.length - 1][0]},${H} L${coords[0][0]},${H} Z`,
      fill: colour,
    }));
    node.append(svg("path", { class: "line", d: line, stroke: colour, "vector-effect": "non-scaling-stroke" }));
    return node;
  }

  // -- rendering -------------------------------------------------------------------------------

  function badge(status) {
    return el("span", { class: "badge", "data-status": status, text: status });
  }

  function renderHealth(health) {
    for (const [name, probe] of Object.entries(health)) {
      const pill = document.querySelector(`.pill[data-probe="${name}"]`);
      if (!pill) continue;
      pill.dataset.ok = probe.ok === null ? "unknown" : String(probe.ok);
      pill.title = probe.detail;
    }
  }

  function stageCard(label, value, unit, note, points, colour, alert) {
    const valueNode = el("div", { class: "value", text: value });
    if (unit) valueNode.append(el("small", { text: unit }));
    return el("div", { class: "card", "data-alert": alert ? "true" : "false" }, [
      el("div", { class: "label", text: label }),
      valueNode,
      el("div", { class: "note", text: note }),
      sparkline(points, colour),
    ]);
  }

  function renderStages(ov) {
    const totals = ov.totals;
    const accent = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim();
    const cards = STAGES.map((s) => stageCard(
      s.label, rate(totals.rates[s.key]), "msg/s",
      `${count(totals.messages[s.key])} ${s.note}`,
      rateHistory.get(s.key) || [],
      s.key === "rejected" ? cssColour("STOP") : accent,
      false,
    ));
    cards.push(stageCard(
      "Reject rate", percent(totals.reject_ratio), "",
      "rejected / source, msg/s", rateHistory.get("reject_ratio") || [], cssColour("STOP"),
      totals.reject_ratio !== null && totals.reject_ratio > 0.05,
    ));
    cards.push(stageCard(
      "Review queue", count(totals.review_queue), "msgs",
      "waiting for a data steward", rateHistory.get("review_queue") || [], cssColour("WARN"),
      totals.review_queue !== null && totals.review_queue > 0,
    ));
    document.getElementById("stage-cards").replaceChildren(...cards);

    const table = document.getElementById("entities");
    table.hidden = ov.entities.length < 2;
    const rows = ov.entities.map((e) => {
      const by = Object.fromEntries(e.stages.map((s) => [s.stage, s]));
      const cell = (k) => el("td", { text: by[k] ? rate(by[k].rate) : "–" });
      return el("tr", { "data-entity": e.entity }, [
        el("td", { text: e.entity }), cell("source"), cell("golden"), cell("changes"),
        cell("rejected"), el("td", { text: percent(e.reject_ratio) }),
        el("td", { text: count(e.review_queue) }),
      ]);
    });
    table.tBodies[0].replaceChildren(...rows);
  }

  function partitionRow(p) {
    return el("tr", {
      "data-topic": p.topic, "data-partition": String(p.partition), title: p.reason,
    }, [
      el("td", { text: p.topic }),
      el("td", { text: String(p.partition) }),
      el("td", {}, [badge(p.status)]),
      el("td", { text: count(p.lag) }),
      el("td", { text: seconds(p.lag_seconds) }),
      el("td", { text: rate(p.consume_rate) }),
      el("td", { text: rate(p.produce_rate) }),
      el("td", { text: p.eta_never ? "never" : seconds(p.eta_seconds) }),
    ]);
  }

  // Partitions that need a look (not OK, or lagging) are listed; the quiet ones fold away.
  function partitionTable(group) {
    const head = el("tr", {}, ["topic", "part.", "status", "lag", "lag age", "consume/s",
      "produce/s", "catch-up"].map((h) => el("th", { text: h })));
    const quiet = (p) => p.status === "OK" && !(p.lag > 0);
    const shown = group.partitions.filter((p) => !quiet(p));
    const folded = group.partitions.filter(quiet);
    const rows = shown.map(partitionRow);
    if (folded.length) {
      const open = openFolds.has(group.group);
      const toggle = el("button", {
        class: "fold", type: "button", "aria-expanded": String(open),
        text: `${open ? "hide" : "show"} ${folded.length} partition${folded.length === 1 ? "" : "s"} OK without lag`,
      });
      toggle.addEventListener("click", () => {
        if (openFolds.has(group.group)) openFolds.delete(group.group);
        else openFolds.add(group.group);
        const table = partitionTable(group);
        toggle.closest("table").replaceWith(table);
      });
      rows.push(el("tr", { class: "fold-row" }, [el("td", { colspan: "8" }, [toggle])]));
      if (open) rows.push(...folded.map(partitionRow));
    }
    const listed = shown.length > 0 || openFolds.has(group.group);
    return el("table", { class: "partitions" }, [
      ...(listed ? [el("thead", {}, [head])] : []), el("tbody", {}, rows),
    ]);
  }

  function renderGroups(ov) {
    const container = document.getElementById("groups");
    const seen = new Set();
    const win = ov.lag.window_s;
    document.getElementById("window").textContent = win
      ? `status over a ${seconds(win).replace(".0 s", " s")} window`
      : "";
    for (const group of ov.lag.groups) {
      seen.add(group.group);
      let card = groupCards.get(group.group);
      if (!card) {
        card = el("article", { class: "group", "data-group": group.group });
        groupCards.set(group.group, card);
      }
      card.dataset.status = group.status;
      const series = (lagHistory.get(group.group) || []).map((p) => ({ at: p.at, value: p.lag }));
      const members = `${group.state.toLowerCase()} · ${group.members} member${group.members === 1 ? "" : "s"}`;
      card.replaceChildren(
        el("div", { class: "group-head" }, [
          el("h3", { text: group.group }), badge(group.status),
          el("span", { class: "meta", text: members }),
        ]),
        el("div", { class: "figures" }, [
          el("div", {}, [el("b", { text: count(group.lag) }), el("span", { text: " msgs behind" })]),
          el("div", {}, [
            el("b", { text: seconds(group.lag_seconds) }), el("span", { text: " oldest unconsumed" }),
          ]),
        ]),
        el("div", { class: "reason", text: group.status === "OK" ? "" : group.reason }),
        lineChart(series, cssColour(group.status), `lag of ${group.group} in messages`),
        partitionTable(group),
      );
    }
    for (const [name, card] of groupCards) {
      if (!seen.has(name)) {
        card.remove();
        groupCards.delete(name);
      }
    }
    // keep the server's order (by name), appending new cards where they belong
    ov.lag.groups.forEach((g, i) => {
      const card = groupCards.get(g.group);
      if (container.children[i] !== card) container.insertBefore(card, container.children[i] || null);
    });
    document.getElementById("no-groups").hidden = ov.lag.groups.length > 0 || ov.lag.at === null;
  }

  function ingest(ov) {
    if (ov.history && !seeded) {
      for (const [group, points] of Object.entries(ov.history)) {
        lagHistory.set(group, points.map(([at, lag, lagSeconds]) => ({ at, lag, lagSeconds })));
      }
      const last = Object.values(ov.history).flatMap((points) => points.map((p) => p[0]));
      if (last.length) lastLagAt = Math.max(...last);
    }
    seeded = true;
    if (ov.lag.at !== null && ov.lag.at !== lastLagAt) {
      lastLagAt = ov.lag.at;
      for (const g of ov.lag.groups) {
        if (!lagHistory.has(g.group)) lagHistory.set(g.group, []);
        push(lagHistory.get(g.group), { at: ov.lag.at, lag: g.lag, lagSeconds: g.lag_seconds });
      }
      for (const [group, series] of lagHistory) {
        // a group gone for longer than the history is forgotten
        if (!series.length || series[series.length - 1].at < ov.lag.at - HISTORY_S) {
          lagHistory.delete(group);
        }
      }
    }
    if (ov.sampled_at !== null && ov.sampled_at !== lastRateAt) {
      lastRateAt = ov.sampled_at;
      const values = { ...ov.totals.rates, reject_ratio: ov.totals.reject_ratio,
        review_queue: ov.totals.review_queue };
      for (const [key, value] of Object.entries(values)) {
        if (value === null || value === undefined) continue;
        if (!rateHistory.has(key)) rateHistory.set(key, []);
        push(rateHistory.get(key), { at: ov.sampled_at, value });
      }
    }
  }

  function render(ov) {
    renderHealth(ov.health);
    renderStages(ov);
    renderGroups(ov);
    const when = new Date(ov.at * 1000).toLocaleTimeString("en-GB");
    const lagAge = ov.lag.at === null ? "waiting for the first lag poll" : `lag read ${seconds(Math.max(0, ov.at - ov.lag.at))} ago`;
    document.getElementById("updated").textContent = `updated ${when} · ${lagAge}`;
  }

  function setOnline(online) {
    document.getElementById("offline").hidden = online;
    if (!online) {
      for (const pill of document.querySelectorAll(".pill")) pill.dataset.ok = "unknown";
    }
  }

  async function tick() {
    try {
      const url = seeded ? OVERVIEW_URL : OVERVIEW_URL + "?history=true";
      const response = await fetch(url, { cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const ov = await response.json();
      ingest(ov);
      render(ov);
      setOnline(true);
    } catch (err) {
      setOnline(false);
      document.getElementById("updated").textContent = `no answer (${err.message || err})`;
    } finally {
      window.setTimeout(tick, REFRESH_MS);
    }
  }

  tick();
})();
