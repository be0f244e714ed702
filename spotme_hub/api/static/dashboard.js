// SPOT-Me Hub dashboard: polls /api/v1/overview; a token (admin scope) is kept in sessionStorage.
(function () {
  "use strict";
  const REFRESH_MS = 10000;
  const KEY = "spotme-hub-token";
  const $ = (id) => document.getElementById(id);
  let timer = null;
  let zone = undefined; // the offices' zone (the overview says): every time is shown in it

  function esc(v) {
    return String(v == null ? "" : v).replace(/[&<>"']/g, (c) =>
      ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }
  function ago(iso) {
    if (!iso) return '<span class="muted">belum pernah · never</span>';
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    const txt = s < 60 ? s + " s" : s < 3600 ? Math.round(s / 60) + " min" : s < 86400
      ? Math.round(s / 3600) + " j/h" : Math.round(s / 86400) + " hari/d";
    const local = new Date(iso).toLocaleString("en-MY", { hour12: false, timeZone: zone });
    return '<span title="' + esc(local) + '">' + txt + ' lalu <span class="en">ago</span></span>';
  }
  function headers() {
    const t = sessionStorage.getItem(KEY);
    return t ? { Authorization: "Bearer " + t } : {};
  }
  function showLogin(message) {
    $("content").hidden = true;
    $("login").hidden = false;
    $("signout").hidden = true;
    if (message) { $("login-error").textContent = message; $("login-error").hidden = false; }
  }

  function renderDevices(devices) {
    const order = { DOWN: 0, DEGRADED: 1, STARTING: 2, UNKNOWN: 3, UP: 4, DISABLED: 5 };
    const shown = (d) => d.state === "STARTING" && d.detail && d.detail.starting
      ? d.detail.starting : d.state;
    devices.sort((a, b) => (order[a.state] ?? 9) - (order[b.state] ?? 9) ||
      a.device_id.localeCompare(b.device_id));
    $("devices").querySelector("tbody").innerHTML = devices.map((d) =>
      '<tr class="' + esc(d.state) + '" data-device="' + esc(d.device_id) + '">' +
      '<td><span class="pill state ' + esc(d.state) + '">' + esc(shown(d)) + "</span></td>" +
      '<td><div class="dev-name">' + esc(d.name || d.device_id) + '</div><div class="dev-id">' +
      esc(d.device_id) + "</div></td>" +
      '<td class="opt">' + esc(d.office_id) + '</td><td class="opt">' + esc(d.kind) + "</td>" +
      "<td>" + ago(d.last_seen) + "</td>" +
      '<td class="num">' + d.punches_today.toLocaleString() + "</td>" +
      '<td class="num opt">' + (d.quarantined_open || '<span class="muted">0</span>') + "</td>" +
      '<td class="err">' + esc(d.state === "UP" ? "" : d.last_error || "") + "</td></tr>").join("") ||
      '<tr><td colspan="8" class="muted">Tiada peranti dikonfigurasi · no devices configured</td></tr>';
  }

  function renderRecent(records) {
    $("recent").querySelector("tbody").innerHTML = records.map((r) =>
      "<tr><td>" + esc(r.local_time.slice(0, 19).replace("T", " ")) + "</td>" +
      "<td>" + (r.employee_id ? esc(r.employee_id) :
        '<span class="muted">' + esc(r.source_user_id || r.card || "?") + "</span>") + "</td>" +
      '<td><span class="punch ' + esc(r.punch) + '">' + esc(r.punch) + "</span></td>" +
      "<td>" + esc(r.verify) + "</td><td>" + esc(r.device_id) + "</td><td>" + esc(r.office_id) +
      "</td><td>" + r.flags.map((f) => '<span class="flag">' + esc(f) + "</span>").join("") +
      "</td></tr>").join("") ||
      '<tr><td colspan="7" class="muted">Belum ada punch · no punches yet</td></tr>';
  }

  // -- Today: /api/v1/days/today per office, and one office's days (#today=OFFICE) ----------
  const COUNTS = ["officers", "present", "late", "not_yet_in", "bdr", "leave", "absent", "off"];
  let todayDate = null;

  function chosenOffice() {
    const m = /^#today=(.+)$/.exec(location.hash);
    return m ? decodeURIComponent(m[1]) : null;
  }
  function num(n) {
    return n ? String(n) : '<span class="muted">0</span>';
  }
  function renderToday(t) {
    todayDate = t.date;
    $("today-date").textContent = t.date;
    const chosen = chosenOffice();
    $("today-offices").querySelector("tbody").innerHTML = t.offices.map((o) =>
      '<tr data-office="' + esc(o.office_id) + '"' + (o.office_id === chosen ? ' class="selected"' : "") +
      '><th scope="row"><div class="dev-name">' + esc(o.name || o.office_id) + '</div><div class="dev-id">' +
      esc(o.office_id) + "</div></th>" +
      COUNTS.map((k) => '<td class="num" data-count="' + k + '">' + num(o[k]) + "</td>").join("") +
      '<td><a class="office-days" href="#today=' + encodeURIComponent(o.office_id) +
      '" aria-label="Hari pegawai ' + esc(o.name || o.office_id) + " hari ini · today's days\"" +
      (o.office_id === chosen ? ' aria-current="true"' : "") + ">" +
      "Lihat <span class=\"en\">days</span></a></td></tr>").join("") ||
      '<tr><td colspan="10" class="muted">Belum ada hari disimpan · no days stored yet ' +
      "(officers configured? see docs/days.md)</td></tr>";
  }
  function hhmm(iso) {
    return iso ? esc(iso.slice(11, 16)) : '<span class="muted">—</span>';
  }
  function renderDays(office, days) {
    days.sort((a, b) => a.employee_id.localeCompare(b.employee_id));
    $("today-days-title").innerHTML = "Hari pegawai " + esc(office) + " · " + esc(todayDate) +
      ' <span class="en">officers\' days</span>';
    $("today-days-list").querySelector("tbody").innerHTML = days.map((d) =>
      '<tr data-employee="' + esc(d.employee_id) + '"><td>' + esc(d.employee_id) + "</td>" +
      '<td><span class="status ' + esc(d.status) + '">' + esc(d.status) + "</span>" +
      (d.late ? ' <span class="late-mark">lewat · late</span>' : "") + "</td>" +
      "<td>" + hhmm(d.first_in) + "</td><td>" + hhmm(d.last_out) + "</td>" +
      "<td>" + (d.due_out ? esc(d.due_out) : '<span class="muted">—</span>') + "</td>" +
      '<td class="num">' + num(d.late_min) + "</td>" +
      "<td>" + d.tags.map((f) => '<span class="flag">' + esc(f) + "</span>").join("") +
      "</td></tr>").join("") ||
      '<tr><td colspan="7" class="muted">Tiada hari · no days</td></tr>';
    $("today-days").hidden = false;
  }
  async function getJson(url) {
    const resp = await fetch(url, { headers: headers(), cache: "no-store" });
    if (!resp.ok) throw new Error("HTTP " + resp.status + " " + url.split("?")[0]);
    return resp.json();
  }
  async function refreshToday() {
    renderToday(await getJson("/api/v1/days/today"));
    const office = chosenOffice();
    if (!office) { $("today-days").hidden = true; return; }
    const days = [];
    let after = 0;
    for (let page = 0; page < 100; page++) {  // the days of one office and date, in pages
      const q = "date=" + encodeURIComponent(todayDate) + "&office=" + encodeURIComponent(office) +
        "&after=" + after + "&limit=1000";
      const body = await getJson("/api/v1/days?" + q);
      if (!body.days.length) break;
      days.push(...body.days);
      after = body.next_cursor;
    }
    renderDays(office, days);
  }

  function renderQuarantine(items) {
    $("quarantine").querySelector("tbody").innerHTML = items.map((it) =>
      '<tr data-qid="' + esc(it.qid) + '"><td class="num">' + esc(it.qid) + "</td>" +
      '<td class="opt">' + ago(it.created_at) + "</td><td>" + esc(it.device_id || "") + "</td>" +
      '<td class="opt">' + esc(it.from) + '</td><td class="err">' +
      esc(it.reason) + '</td><td><button class="replay" data-qid="' + esc(it.qid) + '">' +
      'Ulang <span class="en">Replay</span></button></td></tr>').join("") ||
      '<tr><td colspan="6" class="muted">Tiada item terbuka · nothing open</td></tr>';
  }
  async function replay(qid) {
    const resp = await fetch("/api/v1/quarantine/" + encodeURIComponent(qid) + "/replay",
      { method: "POST", headers: headers() });
    const body = await resp.json().catch(() => ({}));
    $("replay-result").textContent = "#" + qid + ": " + (resp.ok ? body.status + " — " +
      body.detail : "HTTP " + resp.status + " " + JSON.stringify(body.detail || ""));
    refresh();
  }
  async function refreshPending() {
    const resp = await fetch("/api/v1/adms/pending", { headers: headers(), cache: "no-store" });
    const rows = resp.ok ? await resp.json() : [];
    $("pending-card").hidden = !rows.length;
    $("pending").querySelector("tbody").innerHTML = rows.map((p) =>
      "<tr><td><code>" + esc(p.serial) + "</code></td><td>" + ago(p.last_seen) + "</td>" +
      '<td class="num">' + esc(p.requests) + '</td><td class="opt">' + esc(p.remote || "") +
      "</td></tr>").join("");
  }
  function renderBacklog(f) {
    if (!f) {
      $("v-backlog").textContent = "—";
      $("v-dead").innerHTML = 'tidak dikonfigurasi <span class="en">not configured</span>';
      $("tile-backlog").className = "tile";
      return;
    }
    $("v-backlog").textContent = (f.backlog ?? 0).toLocaleString();
    const age = f.backlog && f.oldest_age_s != null ? Math.round(f.oldest_age_s) : null;
    const ageText = age == null ? "" : age < 120 ? age + " s" : Math.round(age / 60) + " min";
    const lines = [];
    if (f.state === "retrying") {
      lines.push('tidak dapat dihantar <span class="en">not delivering</span>: ' + esc(f.last_error || ""));
    }
    if (ageText) lines.push("tertua " + ageText + ' <span class="en">oldest waiting</span>');
    if (f.dead_letters) lines.push(f.dead_letters + ' surat mati <span class="en">dead letters</span>');
    for (const a of f.alerts || []) lines.push(esc(a));
    $("v-dead").innerHTML = lines.join("<br>") || 'dihantar <span class="en">delivered</span>';
    const bad = f.state === "retrying" || f.alert || (f.dead_letters || 0) > 0;
    $("tile-backlog").className = "tile " + (bad ? "alert" : "ok");
  }

  function render(o) {
    zone = o.timezone;
    $("hub-id").textContent = o.hub_id;
    $("updated").innerHTML = "Dikemas kini " +
      new Date().toLocaleTimeString("en-MY", { hour12: false, timeZone: zone }) +
      ' <span class="en">updated (' + esc(zone) + ")</span>";
    const up = o.devices.filter((d) => d.state === "UP").length;
    const down = o.devices.filter((d) => d.state === "DOWN");
    const degraded = o.devices.filter((d) => d.state === "DEGRADED").length;
    $("v-up").textContent = up + " / " + o.devices.length;
    $("v-up-sub").textContent = degraded ? degraded + " degraded" : "";
    $("v-down").textContent = down.length;
    $("v-down-sub").textContent = down.map((d) => d.name || d.device_id).slice(0, 3).join(", ");
    $("tile-down").className = "tile " + (down.length ? "alert" : "ok");
    $("tile-devices").className = "tile " + (up === o.devices.length ? "ok" : "warn");
    $("v-today").textContent = o.devices.reduce((n, d) => n + d.punches_today, 0).toLocaleString();
    const disk = o.disk || {};
    $("v-total").innerHTML = o.records_total.toLocaleString() + ' rekod disimpan <span class="en">stored</span>' +
      (disk.store_bytes != null ? "<br>" + (disk.store_bytes / 1e6).toFixed(1) + " MB · " +
        (disk.free_bytes / 1e9).toFixed(1) + ' GB bebas <span class="en">free</span>' : "") +
      (disk.refusing_writes ? '<br><b>cakera penuh · disk full: new data refused</b>'
        : disk.alert ? '<br><b>cakera hampir penuh · low disk</b>' : "");
    $("tile-today").className = "tile " + (disk.refusing_writes ? "alert" : disk.alert ? "warn" : "");
    renderBacklog(o.forwarding);
    renderQuarantine(o.quarantine || []);
    $("v-quarantine").textContent = o.quarantine_open.toLocaleString();
    $("tile-quarantine").className = "tile " + (o.quarantine_open ? "warn" : "ok");
    renderDevices(o.devices);
    renderRecent(o.recent);
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const resp = await fetch("/api/v1/overview", { headers: headers(), cache: "no-store" });
      if (resp.status === 401 || resp.status === 403) {
        const had = sessionStorage.getItem(KEY);
        sessionStorage.removeItem(KEY);
        const body = await resp.json().catch(() => ({}));
        showLogin(had ? body.detail : null);
        return;
      }
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      render(await resp.json());
      await refreshToday();
      await refreshPending();
      $("login").hidden = true;
      $("content").hidden = false;
      $("fetch-error").hidden = true;
      $("signout").hidden = !sessionStorage.getItem(KEY);
    } catch (e) {
      $("fetch-error").textContent = "Hub tidak dapat dihubungi · hub not reachable (" + e.message + ")";
      $("fetch-error").hidden = false;
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, $("token").value.trim());
    $("token").value = "";
    $("login-error").hidden = true;
    refresh();
  });
  window.addEventListener("hashchange", () => { if (!$("content").hidden) refresh(); });
  $("today-days-close").addEventListener("click", (ev) => {
    ev.preventDefault();
    history.replaceState(null, "", location.pathname + location.search);
    $("today-days").hidden = true;
    refresh();
  });
  $("quarantine").addEventListener("click", (ev) => {
    const btn = ev.target.closest("button.replay");
    if (btn) replay(btn.dataset.qid);
  });
  $("signout").addEventListener("click", (ev) => {
    ev.preventDefault();
    sessionStorage.removeItem(KEY);
    showLogin();
  });
  refresh();
})();
