// Library page: drag-and-drop uploads with a progress bar per file, fed live over /ws/documents/.
(function () {
  "use strict";
  const csrf = () => document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const rows = new Map();
  const gone = new Set();  // deleted from this page: the deletion event that follows changes nothing
  // Documents made since the page was served (by a teammate, the API, another tab, or a team that
  // shares the collection) get a row when their news arrives. Uploads from this page learn their id
  // only when the server answers, so news of an unknown document waits until none is in flight: it
  // may be one of theirs.
  const since = Number(document.querySelector(".library").dataset.since || Infinity);
  let sending = 0;
  // Socket news, counted as it comes: a poll's answer asked for before the latest news of its row
  // is not shown (that news is as new or newer, and a later poll tells the rest).
  let heard = 0;
  const early = new Map();
  const counted = new Set();  // new documents counted while a finder's results were shown instead

  function row(list, id, title) {
    let li = id && list.ownerDocument.querySelector(`li[data-document="${id}"]`);
    if (!li) {
      li = newRow(title);
      list.prepend(li);
    }
    return li;
  }

  // `writable`: the user's team may change the collection (one shared with it is read-only: no
  // retry or delete).
  function newRow(title, writable = true) {
    const li = document.createElement("li");
    li.className = "doc";
    const file = document.createElement("span"); file.className = "file";
    const name = document.createElement("span"); name.className = "name"; name.textContent = title;
    if (writable) {  // chosen for "Delete selected", once the upload has an id
      const pick = document.createElement("input");
      pick.type = "checkbox"; pick.className = "pick"; pick.hidden = true;
      pick.setAttribute("aria-label", `Select ${title}`);
      file.append(pick);
    }
    file.append(name);
    const bar = document.createElement("progress"); bar.max = 1; bar.value = 0; bar.setAttribute("aria-label", "Progress of " + title);
    const status = document.createElement("span"); status.className = "status"; status.textContent = "uploading";
    const actions = document.createElement("span"); actions.className = "actions";
    const ask = document.createElement("a");  // to the chat, narrowed to this document, once it is ready
    ask.className = "button ghost small"; ask.dataset.action = "ask"; ask.textContent = "Ask"; ask.hidden = true;
    ask.setAttribute("aria-label", `Ask about ${title}`);
    actions.append(ask);
    for (const [action, label] of writable ? [["retry", "Retry"], ["rename", "Rename"], ["delete", "Delete"]] : []) {
      const b = document.createElement("button");
      b.type = "button"; b.className = "ghost small"; b.dataset.action = action; b.textContent = label;
      b.setAttribute("aria-label", `${label} ${title}`); b.hidden = true;  // until the upload has an id
      actions.append(b);
    }
    li.append(file, bar, status, actions);
    return li;
  }

  // A document's passages page; with `chunk`, opened at that passage.
  const passagesUrl = (id, chunk) =>
    `/library/documents/${encodeURIComponent(id)}/${chunk ? `?chunk=${encodeURIComponent(chunk)}` : ""}`;

  // A row's type, size and day of upload, as the listed rows say them (in the reader's time zone).
  const KINDS = JSON.parse((document.getElementById("document-kinds") || {}).textContent || "{}");
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const day = (when) => `${when.getDate()} ${MONTHS[when.getMonth()]} ${when.getFullYear()}`;
  const dayTime = (when) => `${day(when)}, ${String(when.getHours()).padStart(2, "0")}:${String(when.getMinutes()).padStart(2, "0")}`;
  function bytes(n) {  // as Django's filesizeformat
    if (n < 1024) return `${n}\u00a0byte${n === 1 ? "" : "s"}`;
    const [unit, size] = n < 1024 ** 2 ? ["KB", n / 1024] : n < 1024 ** 3 ? ["MB", n / 1024 ** 2] : ["GB", n / 1024 ** 3];
    return `${size.toFixed(1)}\u00a0${unit}`;
  }
  function describe(li, d) {
    // Who uploaded it: said by the upload's own event and by the document's API answer, not by a
    // worker's progress (which may be the first news of it), so added whenever it comes.
    const meta = li.querySelector(".meta");
    if (meta && d.uploaded_by && !meta.querySelector(".by")) uploader(meta, d.uploaded_by);
    if (!d.kind || meta) return;
    const made = document.createElement("span"); made.className = "meta";
    const time = document.createElement("time");
    const when = d.created_at ? new Date(d.created_at) : new Date(d.created * 1000);
    time.dateTime = when.toISOString(); time.textContent = day(when);
    made.append(`${KINDS[d.kind] || d.kind} · ${bytes(d.size)} · `, time);
    if (d.uploaded_by) uploader(made, d.uploaded_by);
    if (/^https?:\/\//.test(d.url || "")) {  // a web source's page: where it was read
      const page = document.createElement("a");
      page.href = d.url; page.textContent = "the page"; page.target = "_blank"; page.rel = "noopener noreferrer";
      page.title = d.url;
      made.append(" · ", page);
    }
    li.querySelector(".file").append(made);
  }

  function uploader(meta, name) {  // (a web source's pages have none)
    const by = document.createElement("span"); by.className = "by"; by.textContent = ` · by ${name}`;
    meta.append(by);
  }

  function show(li, ev) {
    li.dataset.status = ev.status;
    describe(li, ev);
    const retry = li.querySelector("[data-action=retry]"), del = li.querySelector("[data-action=delete]");
    if (retry) retry.hidden = !(li.dataset.document && ev.status === "failed");
    const all = li.closest(".collection") && li.closest(".collection").querySelector("[data-action=retry-failed]");
    if (all && li.dataset.document && ev.status === "failed") all.hidden = false;
    if (del) del.hidden = !li.dataset.document;
    const rename = li.querySelector("[data-action=rename]");
    if (rename) rename.hidden = !li.dataset.document;
    const pick = li.querySelector("input.pick");
    if (pick) pick.hidden = !li.dataset.document;
    const ask = li.querySelector("[data-action=ask]");
    if (ask) {
      ask.hidden = !(li.dataset.document && ev.status === "ready");
      ask.href = `/?document=${encodeURIComponent(li.dataset.document || "")}`;
    }
    li.querySelector("progress").value = ev.status === "ready" ? 1 : (ev.progress || 0);
    const status = li.querySelector(".status");
    status.textContent = ev.status === "ready" ? "ready · " : ev.status;
    if (ev.status === "ready") {
      // The passages it was cut into, once stored: how search and the chat read it.
      const passages = document.createElement(li.dataset.document ? "a" : "span");
      passages.textContent = `${ev.chunks} chunk${ev.chunks === 1 ? "" : "s"}`;
      if (li.dataset.document) {
        passages.href = passagesUrl(li.dataset.document);
        passages.title = `The passages ${li.querySelector(".name").textContent} was cut into`;
      }
      status.append(passages);
    }
    if (li.dataset.replaces && (ev.status === "queued" || ev.status === "processing")) status.textContent += " · replaces the older version when ready";
    if (li.dataset.duplicate) status.append(" · already uploaded");
    let err = li.querySelector(".error");
    if (ev.error && ev.status === "failed") {
      if (!err) { err = document.createElement("span"); err.className = "error"; li.append(err); }
      err.textContent = ev.error;
    } else if (err) { err.remove(); }
  }

  // Once stored, the file opens from its row, as the rows the page was served with do.
  function link(li, id) {
    const name = li.querySelector(".name");
    if (name.tagName === "A") return;
    const a = document.createElement("a");
    a.className = "name"; a.textContent = name.textContent; a.title = `Open ${name.textContent}`;
    a.href = `/api/v1/documents/${encodeURIComponent(id)}/file`; a.target = "_blank"; a.rel = "noopener";
    name.replaceWith(a);
  }

  // A row whose document is stored: it opens its file and takes the document's progress events.
  function stored(li, id) {
    li.dataset.document = id;
    link(li, id);
    rows.set(String(id), li);
  }

  // A collection's count of documents, and the line under its finder that says how many of them
  // are listed (unless the finder shows what it was asked for); after its rows have changed.
  function count(section, delta) {
    const span = section && section.querySelector(".count");
    if (!span) return;
    const n = Math.max(0, Number(span.dataset.count) + delta);
    span.dataset.count = String(n);
    span.textContent = `${n} document${n === 1 ? "" : "s"}`;
    const shown = section.querySelector(".shown");
    if (!shown || filtering(section)) return;
    const listed = section.querySelectorAll("li.doc[data-document]").length;
    shown.textContent = `The ${listed} most recent of ${n}.`;
  }

  const filtering = (section) => {
    const filter = section.querySelector(".doc-filter"), status = section.querySelector(".doc-status");
    return Boolean((filter && filter.value.trim()) || (status && status.value));
  };

  // A file from a folder is sent under its path in it ("wiki/howto/README.md"): the server keeps it
  // as the document's name, so two READMEs of one folder stay two documents.
  function upload(section, file, li, path) {
    path = path || file.webkitRelativePath || file.name;
    li = li || row(section.querySelector(".documents"), null, path);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/v1/collections/${section.dataset.collection}/documents`);
    xhr.setRequestHeader("X-CSRFToken", csrf());
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) li.querySelector("progress").value = 0.05 * e.loaded / e.total; };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if ((xhr.status === 202 || xhr.status === 200) && gone.has(String(body.id))) {
        li.remove();  // deleted elsewhere before this answer came: never counted, nothing to show
      } else if (xhr.status === 202 || xhr.status === 200) {
        // The same bytes already in the collection: nothing new was added, so the existing
        // document's row, when listed, takes the upload's place rather than a second row for it.
        const listed = body.duplicate && section.querySelector(`li.doc[data-document="${body.id}"]`);
        if (listed && listed !== li) {
          li.replaceWith(listed);
          li = listed;
        }
        stored(li, body.id);
        describe(li, body);
        if (body.duplicate) {
          li.dataset.duplicate = "1";  // said by every update of the row, the first read at once below
        } else {
          count(section, +1);
          show(li, { status: body.status, progress: 0.05, chunks: 0 });
        }
        if (body.replaces && body.replaces.length) li.dataset.replaces = body.replaces.join(" ");
        poll(body.id, li, body.duplicate ? 0 : 3000);  // a copy's state is the existing document's: read it now
      } else if (xhr.status === 429) {
        // Over the upload rate: wait as told and send it again, so a large drop loses no file.
        const wait = Math.max(1, parseInt(xhr.getResponseHeader("Retry-After"), 10) || 5);
        li.dataset.retried = "1";
        show(li, { status: "waiting", progress: 0 });
        li.querySelector(".status").textContent = `upload rate limit: sending again in ${wait} s`;
        setTimeout(() => upload(section, file, li, path), wait * 1000);
      } else {
        show(li, { status: "failed", error: (body.error && body.error.message) || `upload failed (${xhr.status})` });
      }
    };
    xhr.onerror = () => show(li, { status: "failed", error: "the upload was interrupted; check your connection" });
    sending += 1;
    xhr.onloadend = () => { sending -= 1; if (!sending) { early.forEach(news); early.clear(); } };
    const form = new FormData(); form.append("file", file); form.append("path", path);
    const replace = document.getElementById("replace-same-name");
    form.append("replace", replace && replace.checked ? "true" : "false");
    xhr.send(form);
  }

  // Every failed document of a collection queued again (those past the listed 20 too).
  document.addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-action=retry-failed]");
    if (!button) return;
    const section = button.closest(".collection");
    button.disabled = true;
    let queued;
    try {
      ({ queued } = await apiCall(`/api/v1/collections/${section.dataset.collection}/retry`, { method: "POST" }));
    } catch (err) {
      button.textContent = "that did not work; try again";
      return;
    } finally {
      button.disabled = false;
    }
    for (const li of section.querySelectorAll("li.doc[data-status=failed][data-document]")) {
      delete li.dataset.duplicate;
      show(li, { status: "queued", progress: 0 }); poll(li.dataset.document, li);
    }
    button.hidden = true;
    button.textContent = "Retry failed";
    const shown = section.querySelector(".retried") || document.createElement("p");
    shown.className = "muted retried"; shown.setAttribute("role", "status");
    shown.textContent = `${queued} failed document${queued === 1 ? "" : "s"} queued again.`;
    section.querySelector(".documents").before(shown);
  });

  // A JSON call to the API with the session's CSRF token: the body, or an Error carrying the API's
  // message and the HTTP status (0 when the network failed).
  async function apiCall(path, options = {}) {
    const response = await fetch(path, {
      credentials: "same-origin", ...options,
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
    }).catch(() => null);
    const body = response && response.status !== 204 ? await response.json().catch(() => ({})) : {};
    if (!response || !response.ok) {
      const error = new Error((body.error && body.error.message) || "That did not work; try again.");
      error.status = response ? response.status : 0;
      throw error;
    }
    return body;
  }

  // Renaming a collection, for its team's admins (the API checks the role and the name).
  document.addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-action=rename-collection]");
    if (!button) return;
    const section = button.closest(".collection"), heading = section.querySelector("h2");
    const name = prompt("Rename the collection", heading.textContent);
    if (!name || !name.trim() || name.trim() === heading.textContent) return;
    let body;
    try {
      body = await apiCall(`/api/v1/collections/${section.dataset.collection}`, { method: "PATCH", body: JSON.stringify({ name: name.trim() }) });
    } catch (err) {
      alert(err.status ? err.message : "The collection could not be renamed; try again.");
      return;
    }
    heading.textContent = body.name;
    // Each header button is named by its words then the collection's (data-label, then the name).
    for (const b of section.querySelectorAll("header [data-label]")) b.setAttribute("aria-label", `${b.dataset.label} ${body.name}`);
  });

  // A collection's instructions to the model, for its team's admins; everyone sees them above its
  // documents, since they shape every answer drawn from it. The same form holds the questions the
  // chat page suggests asking of it.
  // Its documents' language too (for keyword search), in a form of its own.
  document.addEventListener("click", (e) => {
    const button = e.target.closest("button[data-action^=edit-], button[data-action^=cancel-]");
    const what = button && button.dataset.action.replace(/^(edit|cancel)-/, "");
    if (!what || !["instructions", "language", "sharing"].includes(what)) return;
    const form = button.closest(".collection").querySelector(`.${what}-form`);
    form.hidden = button.dataset.action.startsWith("cancel-");
    if (!form.hidden) (form.querySelector("textarea, select, input") || form.querySelector("button")).focus();
  });
  // Which other teams may read a collection (its team's admins choose; the API checks).
  document.addEventListener("submit", async (e) => {
    const form = e.target.closest(".sharing-form");
    if (!form) return;
    e.preventDefault();
    const section = form.closest(".collection");
    const teams = [...form.querySelectorAll("input[name=team]:checked")].map((box) => Number(box.value));
    const everyone = form.querySelector("input[name=everyone]").checked;
    let body;
    try {
      body = await apiCall(`/api/v1/collections/${section.dataset.collection}`, { method: "PATCH", body: JSON.stringify({ shared_with: teams, shared_with_all: everyone }) });
    } catch (err) {
      alert(err.status ? err.message : "The sharing could not be saved; try again.");
      return;
    }
    const note = section.querySelector(".sharing-note");
    note.querySelector(".sharing-text").textContent = body.shared_with_all ? "every team" : body.shared_with.map((t) => t.name).join(", ");
    note.hidden = !body.shared_with.length && !body.shared_with_all;
    form.hidden = true;
  });
  document.addEventListener("submit", async (e) => {
    const form = e.target.closest(".language-form");
    if (!form) return;
    e.preventDefault();
    const section = form.closest(".collection"), select = form.querySelector("select");
    let body;
    try {
      body = await apiCall(`/api/v1/collections/${section.dataset.collection}`, { method: "PATCH", body: JSON.stringify({ language: select.value }) });
    } catch (err) {
      alert(err.status ? err.message : "The language could not be changed; try again.");
      return;
    }
    const note = section.querySelector(".language-note");
    note.querySelector(".language").textContent = select.selectedOptions[0].textContent;
    note.hidden = body.language === "english";
    form.hidden = true;
  });
  document.addEventListener("submit", async (e) => {
    const form = e.target.closest(".instructions-form");
    if (!form) return;
    e.preventDefault();
    const section = form.closest(".collection");
    let body;
    try {
      const questions = form.querySelector("textarea[name=starter_questions]").value.split("\n");
      body = await apiCall(`/api/v1/collections/${section.dataset.collection}`, { method: "PATCH",
        body: JSON.stringify({ instructions: form.querySelector("textarea[name=instructions]").value, starter_questions: questions }) });
    } catch (err) {
      alert(err.status ? err.message : "The instructions could not be saved; try again.");
      return;
    }
    const note = section.querySelector(".instructions-note");
    note.querySelector(".instructions-text").textContent = body.instructions;
    note.hidden = !body.instructions;
    form.querySelector("textarea[name=instructions]").value = body.instructions;
    form.querySelector("textarea[name=starter_questions]").value = body.starter_questions.join("\n");
    form.hidden = true;
  });

  // Teams: every member sees who is in each of their teams; a team's admins add members by user
  // name, change roles and remove members (the API keeps one admin in every team).
  const teamCall = (team, path, options) => apiCall(`/api/v1/teams/${team.dataset.team}/members${path}`, options);
  async function showMembers(team) {
    // Changes in quick succession each list the members again: only the latest listing is drawn
    // (an earlier one answering last would bring back a member just removed).
    const asked = (team.listing = (team.listing || 0) + 1);
    let members;
    try {
      members = await teamCall(team, "");
      if (asked !== team.listing) return;
    } catch (err) {
      if (asked !== team.listing) return;
      if (err.status === 404) { location.reload(); return; }  // no longer in the team (removed, or left)
      team.querySelector(".members").textContent = "The members could not be listed; reload the page.";
      return;
    }
    const name = team.querySelector("h3").textContent;
    const list = team.querySelector(".members");
    list.replaceChildren(...members.map((m) => {
      const li = document.createElement("li");
      li.dataset.username = m.username;
      const who = document.createElement("span"); who.textContent = m.username;
      li.append(who, " ");
      if (m.from_sso) {
        const from = document.createElement("span");
        from.className = "muted from-sso";
        from.textContent = "(from sign-in groups)";
        from.title = "Given by a group at your sign-in provider: removed here, they come back at their next sign-in while the group names this team.";
        li.append(from, " ");
      }
      if (team.dataset.manage) {
        const role = document.createElement("select");
        role.setAttribute("aria-label", `Role of ${m.username} in ${name}`);
        for (const r of ["member", "admin"]) role.append(new Option(r, r, false, r === m.role));
        role.addEventListener("change", () => changeMember(team, m.username, { method: "PUT", body: JSON.stringify({ role: role.value }) }));
        const remove = document.createElement("button");
        remove.type = "button"; remove.className = "ghost small"; remove.textContent = "Remove";
        remove.setAttribute("aria-label", `Remove ${m.username} from ${name}`);
        remove.addEventListener("click", () => changeMember(team, m.username, { method: "DELETE" }));
        li.append(role, " ", remove);
      } else {
        const role = document.createElement("span"); role.className = "muted"; role.textContent = m.role;
        li.append(role);
      }
      return li;
    }));
  }
  // A team's member changes go to the server one at a time, in the order made: a role change and a
  // removal sent at once could arrive in either order, and the role change (an upsert) re-add the
  // member just removed.
  function inTurn(team, change) {
    team.changes = (team.changes || Promise.resolve()).then(change);
    return team.changes;
  }
  function changeMember(team, username, options) {
    return inTurn(team, async () => {
      try {
        await teamCall(team, `/${encodeURIComponent(username)}`, options);
        // One's own role changed: the page's admin controls (rename, delete, instructions) follow it.
        if (username === team.dataset.me) { location.reload(); return; }
      } catch (err) { alert(err.message); }
      showMembers(team);
    });
  }
  document.querySelectorAll("section.team").forEach(showMembers);

  // A team's activity (its admins): the audit log's events for the team, twenty at a time, read
  // when the section opens.
  const EVENTS_PAGE = 20;
  function eventDetail(e) {
    const d = e.details || {};
    if (e.action === "member_role") return `${d.was} → ${d.role}`;
    if (e.action === "member_add") return d.by ? `as ${d.role}, ${d.by}` : `as ${d.role}`;
    if (e.action === "collection_update") return `${d.changed.join(", ")}${d.was ? ` (was ${d.was})` : ""}`;
    if (e.action === "collection_share") {
      if (d.everyone) return "read by every team";
      return d.teams.length ? `read by ${d.teams.join(", ")}` : "read by its own team only";
    }
    if (e.action === "document_rename") return `in ${d.collection}, was ${d.from}`;
    if (["document_upload", "document_retry", "document_delete", "web_source_add"].includes(e.action)) return `in ${d.collection}`;
    if (e.action === "collection_retry") return `${d.queued} failed document${d.queued === 1 ? "" : "s"}`;
    if (e.action === "web_source_remove") return `from ${d.collection}, ${d.documents} document${d.documents === 1 ? "" : "s"} deleted`;
    return "";
  }
  async function showEvents(details, more) {
    const team = details.closest("section.team"), list = details.querySelector(".events"), older = details.querySelector(".older");
    const offset = more ? list.children.length : 0;
    let events;
    try {
      events = await apiCall(`/api/v1/teams/${team.dataset.team}/audit?limit=${EVENTS_PAGE}&offset=${offset}`);
    } catch (err) { list.textContent = err.message; return; }
    const items = events.map((e) => {
      const li = document.createElement("li");
      const when = document.createElement("time"); when.dateTime = e.at; when.textContent = dayTime(new Date(e.at));
      const what = document.createElement("span");
      what.textContent = ` ${e.actor || "Docent"} ${e.what}${e.target ? `: ${e.target}` : ""}`;
      li.append(when, what);
      const detail = eventDetail(e);
      if (detail) { const extra = document.createElement("span"); extra.className = "muted"; extra.textContent = ` (${detail})`; li.append(extra); }
      return li;
    });
    if (more) list.append(...items); else list.replaceChildren(...items);
    if (!more && !items.length) list.textContent = "Nothing yet.";
    older.hidden = events.length < EVENTS_PAGE;
  }
  // What each member of a team has spent this month (its admins), read when the section opens.
  const number = (n) => n.toLocaleString("en");
  async function showUsage(details) {
    const team = details.closest("section.team"), body = details.querySelector("tbody");
    let usage;
    try { usage = await apiCall(`/api/v1/teams/${team.dataset.team}/usage`); } catch (err) { body.textContent = err.message; return; }
    body.replaceChildren(...usage.members.map((m) => {
      const tr = document.createElement("tr");
      const share = m.quota_tokens ? ` (${Math.round((100 * m.tokens) / m.quota_tokens)}%)` : "";
      for (const text of [m.username, number(m.answers), `${number(m.tokens)}${share}`, m.quota_tokens ? number(m.quota_tokens) : "unlimited"]) {
        const td = document.createElement("td"); td.textContent = text; tr.append(td);
      }
      return tr;
    }));
  }
  document.querySelectorAll("section.team details.team-usage").forEach((details) => {
    details.addEventListener("toggle", () => { if (details.open) showUsage(details); });
  });
  document.querySelectorAll("section.team details.activity").forEach((details) => {
    details.addEventListener("toggle", () => { if (details.open) showEvents(details, false); });
    details.querySelector(".older").addEventListener("click", () => showEvents(details, true));
  });
  document.addEventListener("submit", async (e) => {
    const form = e.target.closest("form.add-member");
    if (!form) return;
    e.preventDefault();
    const team = form.closest("section.team"), error = form.querySelector(".error");
    const username = form.elements.username.value.trim(), role = form.elements.role.value;
    await inTurn(team, async () => {
      try {
        await teamCall(team, `/${encodeURIComponent(username)}`, { method: "PUT", body: JSON.stringify({ role }) });
        form.reset(); error.hidden = true;
      } catch (err) {
        error.textContent = err.message; error.hidden = false;
      }
      showMembers(team);
    });
  });

  // A whole collection, for its team's admins (the API checks the role).
  document.addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-action=delete-collection]");
    if (!button) return;
    const section = button.closest(".collection");
    const name = section.querySelector("h2").textContent;
    const n = Number(section.querySelector(".count").dataset.count);
    if (!confirm(`Delete the collection “${name}” and its ${n} document${n === 1 ? "" : "s"}? Their passages are no longer searched. This cannot be undone.`)) return;
    button.disabled = true;
    try {
      await apiCall(`/api/v1/collections/${section.dataset.collection}`, { method: "DELETE" });
    } catch (err) {
      if (err.status !== 404) { button.disabled = false; button.textContent = err.message; return; }
    }
    section.remove();  // deleted, or already gone
  });

  // A document's new title in its row: its name, and every label and tip that says it.
  const LABELS = { ask: "Ask about", retry: "Retry", rename: "Rename", delete: "Delete" };
  function retitle(li, title) {
    const name = li.querySelector(".name");
    name.textContent = title;
    const pick = li.querySelector("input.pick");
    if (pick) pick.setAttribute("aria-label", `Select ${title}`);
    if (name.tagName === "A") name.title = `Open ${title}`;
    li.querySelector("progress").setAttribute("aria-label", `Progress of ${title}`);
    for (const el of li.querySelectorAll(".actions [data-action]")) {
      if (LABELS[el.dataset.action]) el.setAttribute("aria-label", `${LABELS[el.dataset.action]} ${title}`);
    }
    const passages = li.querySelector(".status a");
    if (passages) passages.title = `The passages ${title} was cut into`;
  }

  // Renaming a document (the API checks that the caller's team owns it, and the title).
  document.addEventListener("click", async (e) => {
    const button = e.target.closest("li.doc button[data-action=rename]");
    if (!button) return;
    const li = button.closest("li.doc"), current = li.querySelector(".name").textContent;
    const title = prompt("Rename the document", current);
    if (!title || !title.trim() || title.trim() === current) return;
    button.disabled = true;
    try {
      const body = await apiCall(`/api/v1/documents/${li.dataset.document}`, { method: "PATCH", body: JSON.stringify({ title }) });
      retitle(li, body.title);
    } catch (err) {
      alert(err.status ? err.message : "The document could not be renamed; try again.");
    } finally {
      button.disabled = false;
    }
  });

  // Delete and retry, on any listed document (the API checks that the caller's team owns it).
  document.addEventListener("click", async (e) => {
    const button = e.target.closest("li.doc button[data-action=retry], li.doc button[data-action=delete]");
    if (!button) return;
    const li = button.closest("li.doc"), id = li.dataset.document;
    const title = li.querySelector(".name").textContent;
    if (button.dataset.action === "delete" && !confirm(`Delete “${title}”? Its passages are no longer searched.`)) return;
    button.disabled = true;
    const retry = button.dataset.action === "retry";
    try {
      await apiCall(`/api/v1/documents/${id}${retry ? "/retry" : ""}`, { method: retry ? "POST" : "DELETE" });
    } catch (err) {
      if (retry || err.status !== 404) {  // a deletion of what is already gone is done
        button.disabled = false;
        li.querySelector(".status").textContent = err.message;
        return;
      }
    }
    button.disabled = false;
    if (retry) { delete li.dataset.duplicate; show(li, { status: "queued", progress: 0 }); poll(id, li); return; }
    vanish(id, li, li.closest(".collection"));
  });

  // Several documents of a collection chosen by their boxes, deleted at once (all or none).
  function picked(section) {
    return [...section.querySelectorAll("li.doc[data-document] input.pick:checked")].map((box) => box.closest("li.doc"));
  }
  function showPicked(section) {
    const bar = section && section.querySelector(".selection");
    if (!bar) return;
    const n = picked(section).length;
    bar.hidden = !n;
    bar.querySelector(".picked").textContent = `${n} selected`;
  }
  document.addEventListener("change", (e) => {
    if (e.target.matches("li.doc input.pick")) showPicked(e.target.closest(".collection"));
  });
  document.addEventListener("click", async (e) => {
    const button = e.target.closest(".selection button[data-action]");
    if (!button) return;
    const section = button.closest(".collection"), chosen = picked(section);
    if (button.dataset.action === "clear-selection") {
      chosen.forEach((li) => { li.querySelector("input.pick").checked = false; });
      showPicked(section);
      return;
    }
    const n = chosen.length;
    if (!n || !confirm(`Delete ${n} document${n === 1 ? "" : "s"}? Their passages are no longer searched.`)) return;
    button.disabled = true;
    try {
      await apiCall("/api/v1/documents/delete", { method: "POST", body: JSON.stringify({ ids: chosen.map((li) => Number(li.dataset.document)) }) });
      chosen.forEach((li) => vanish(li.dataset.document, li, section));
    } catch (err) {
      alert(err.status ? err.message : "The documents could not be deleted; try again.");
    } finally {
      button.disabled = false;
      showPicked(section);
    }
  });

  // A document gone (deleted, or replaced by its new version): its row leaves, and the count drops
  // once, whichever way the page learnt it.
  function vanish(id, li, section) {
    rows.delete(id);
    if (li) { const where = li.closest(".collection"); li.remove(); showPicked(where); }
    if (gone.has(id)) return;
    gone.add(id);
    count(section, -1);
  }

  // Polling backs the websocket up: it tells the truth even when a progress event was missed, and
  // a document deleted meanwhile answers 404.
  function poll(id, li, first = 3000) {
    const tick = () => {
      const asked = heard;
      fetch(`/api/v1/documents/${id}`, { credentials: "same-origin" })
        .then((r) => {
          if (r.status === 404) vanish(String(id), li, li.closest(".collection"));
          return r.ok ? r.json() : null;
        })
        .then((d) => {
          if (!d) return;
          if (!(Number(li.dataset.heard) > asked)) show(li, d);
          if (li.dataset.status === "queued" || li.dataset.status === "processing") setTimeout(tick, 3000);
        }).catch(() => setTimeout(tick, 5000));
    };
    setTimeout(tick, first);
  }

  // A document this page has no row for: a row, when it is new since the page was served (an older
  // one, past the rows listed, stays for the finder) and its collection is on the page.
  function news(ev) {
    const id = String(ev.id);
    if (rows.has(id) || gone.has(id) || !(ev.created >= since)) return;
    const section = document.querySelector(`.collection[data-collection="${ev.collection_id}"]`);
    if (!section) return;
    // The list shows what its finder was asked for: a new document is not among those found.
    if (filtering(section)) {
      if (!counted.has(id)) { counted.add(id); count(section, +1); }
      return;
    }
    const li = newRow(ev.title, !section.dataset.readonly);
    section.querySelector(".documents").prepend(li);
    stored(li, id);
    if (!counted.has(id)) count(section, +1);
    show(li, ev);
  }

  function connect(delay) {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${proto}://${location.host}/ws/documents/`);
    ws.onmessage = (m) => {
      const ev = JSON.parse(m.data);
      const id = String(ev.id);
      if (ev.type === "team_left") {  // removed from a team: its collections are no longer this user's
        location.reload();
        return;
      }
      if (ev.type === "collection_deleted") {  // by a team admin, on another page
        const section = document.querySelector(`.collection[data-collection="${id}"]`);
        if (section) section.remove();
        return;
      }
      if (ev.type === "collection_shared" || ev.type === "collection_unshared") {
        readable(id);
        return;
      }
      const li = rows.get(id) || document.querySelector(`li[data-document="${id}"]`);
      if (ev.type === "deleted") {
        if (early.delete(id)) { gone.add(id); return; }  // made and deleted before it had a row
        // Deleted elsewhere, or replaced by its new version: gone from the list and the count.
        vanish(id, li, document.querySelector(`.collection[data-collection="${ev.collection_id}"]`));
        return;
      }
      if (ev.type === "renamed") {  // elsewhere: a row not shown here has its title from the server
        if (li) retitle(li, ev.title);
        return;
      }
      if (li) { li.dataset.heard = ++heard; show(li, ev); }
      else if (sending) early.set(id, ev);
      else news(ev);
    };
    ws.onopen = () => { delay = 500; document.body.dataset.live = "1"; };
    ws.onclose = () => { document.body.dataset.live = ""; setTimeout(() => connect(Math.min(delay * 2, 15000)), delay); };
  }

  // A folder holds more than documents (images, build files...): only the supported types go up,
  // images not among them (a folder's are diagrams and icons), and the page says how many were left out.
  // The types, from the file picker's data-folder (".pdf,.docx,...") and, in words, its
  // data-folder-supported.
  const picker = document.querySelector("input[type=file][accept]");
  const SUPPORTED = new Set((picker ? picker.dataset.folder : "").split(",").map((e) => e.trim().toLowerCase()));
  const supported = (name) => name.lastIndexOf(".") > 0 && SUPPORTED.has(name.slice(name.lastIndexOf(".")).toLowerCase());
  // Hidden folders and files (.git, .env) and installed dependencies (node_modules) are not documents.
  const SKIPPED = new Set((picker ? picker.dataset.folderSkipped || "" : "").split(",").filter(Boolean));
  const aside = (path) => {
    const parts = path.split("/");  // the chosen folder's own name first: not judged
    return (parts.length > 1 ? parts.slice(1) : parts).some((part) => part.startsWith(".") || SKIPPED.has(part));
  };
  function uploadFolder(section, files) {  // files: File, or {file, path} from a dropped folder
    const items = files.map((f) => (f instanceof File ? { file: f, path: f.webkitRelativePath || f.name } : f));
    const hidden = items.filter((i) => aside(i.path)).length;
    const wanted = items.filter((i) => !aside(i.path) && supported(i.file.name));
    wanted.forEach((i) => upload(section, i.file, null, i.path));
    let note = section.querySelector(".folder-note");
    if (!note) { note = document.createElement("p"); note.className = "muted folder-note"; section.querySelector(".documents").before(note); }
    const other = files.length - wanted.length - hidden;
    const out = [];
    if (other) out.push(`${other} not ${picker ? picker.dataset.folderSupported : "a supported type"}`);
    if (hidden) out.push(`${hidden} in hidden or dependency folders`);
    note.textContent = `${wanted.length} file${wanted.length === 1 ? "" : "s"} from the folder uploaded` +
      (out.length ? `; left out: ${out.join("; ")}` : "") + ".";
  }

  // Files inside dropped folders, subfolders included (the entries API; readEntries gives batches).
  async function dropped(items) {
    const files = [];
    const walk = async (entry) => {
      if (entry.isFile) {
        files.push({ file: await new Promise((ok, fail) => entry.file(ok, fail)), path: entry.fullPath.replace(/^\/+/, "") });
        return;
      }
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
        if (!batch.length) break;
        for (const child of batch) await walk(child);
      }
    };
    for (const entry of items) await walk(entry);
    return files;
  }

  // A collection shared with one of the user's teams, or no longer: its section as the server now
  // serves it (the user may still read it through another team), added in the page's order
  // (team, then name) or removed.
  async function readable(id) {
    const url = `/library/collections/${encodeURIComponent(id)}/`;
    const response = await fetch(url, { credentials: "same-origin" }).catch(() => null);
    if (!response || (!response.ok && response.status !== 404)) return;
    const old = document.querySelector(`.collection[data-collection="${id}"]`);
    if (response.status === 404) {
      if (old) old.remove();
      return;
    }
    if (old) return;
    const html = document.createElement("template");
    html.innerHTML = await response.text();
    const section = html.content.querySelector("section.collection");
    if (!section || document.querySelector(`.collection[data-collection="${id}"]`)) return;
    const key = (s) => [s.dataset.teamName || "", s.querySelector("h2").textContent];
    const [team, name] = key(section);
    const sections = [...document.querySelectorAll(".collection")];
    const next = sections.find((s) => {
      const [t, n] = key(s);
      return t > team || (t === team && n > name);
    });
    const empty = document.querySelector(".no-collections");
    if (next) next.before(section);
    else if (sections.length) sections[sections.length - 1].after(section);
    else if (empty) empty.replaceWith(section);
    else {
      const teams = document.querySelector(".teams-heading");
      if (teams) teams.before(section); else document.querySelector(".library").append(section);
    }
    wire(section);
  }

  function wire(section) {
    section.querySelectorAll(".doc .meta time").forEach((t) => { t.textContent = day(new Date(t.dateTime)); });
    // Rows still being read are polled too: the websocket may miss news (a reconnect, a restart).
    section.querySelectorAll("li[data-document]").forEach((li) => {
      rows.set(li.dataset.document, li);
      if (li.dataset.status === "queued" || li.dataset.status === "processing") poll(li.dataset.document, li);
    });
    const zone = section.querySelector(".dropzone");
    const folder = section.querySelector(".folder-pick input");
    finder(section);
    if (!zone || !folder) return;  // shared with the user's team to read only
    folder.addEventListener("change", () => { uploadFolder(section, [...folder.files]); folder.value = ""; });
    const input = zone.querySelector("input");
    input.addEventListener("change", () => { [...input.files].forEach((f) => upload(section, f)); input.value = ""; });
    zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault(); zone.classList.remove("over");
      const entries = [...(e.dataTransfer.items || [])].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
      if (entries.some((entry) => entry.isDirectory)) dropped(entries).then((files) => uploadFolder(section, files));
      else [...e.dataTransfer.files].forEach((f) => upload(section, f));
    });
  }

  // A collection holding more than the page lists: find the others by name or status.
  function finder(section) {
    const box = section.querySelector(".finder");
    if (!box) return;
    const input = box.querySelector(".doc-filter"), status = box.querySelector(".doc-status");
    const list = section.querySelector(".documents"), shown = section.querySelector(".shown");
    let timer = null, asked = 0;
    const find = async () => {
      const mine = ++asked;
      const params = new URLSearchParams({ q: input.value.trim(), status: status.value, limit: "50" });
      const response = await fetch(`/api/v1/collections/${section.dataset.collection}/documents?${params}`, { credentials: "same-origin" }).catch(() => null);
      if (mine !== asked) return;  // a newer search has been sent meanwhile
      if (!response || !response.ok) { shown.textContent = "Could not search the documents; try again."; return; }
      const documents = await response.json(), total = Number(response.headers.get("X-Total-Count") || documents.length);
      // A document deleted while this answer was on its way stays gone.
      list.replaceChildren(...documents.filter((d) => !gone.has(String(d.id))).map((d) => {
        const li = newRow(d.title, !section.dataset.readonly);
        stored(li, d.id);
        show(li, d);
        if (d.status === "queued" || d.status === "processing") poll(d.id, li);
        return li;
      }));
      const filtered = input.value.trim() || status.value;
      shown.textContent = filtered
        ? (total ? `${documents.length} of ${total} matching.` : "No document matches.")
        : `The ${documents.length} most recent of ${total}.`;
    };
    input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(find, 250); });
    status.addEventListener("change", () => { clearTimeout(timer); find(); });
  }
  document.querySelectorAll(".collection").forEach(wire);

  const form = document.getElementById("new-collection");
  if (form) form.addEventListener("submit", (e) => {
    e.preventDefault();
    const err = form.querySelector(".error");
    apiCall("/api/v1/collections", { method: "POST", body: JSON.stringify({ name: form.name.value, team: Number(form.team.value), language: form.language.value }) })
      .then(() => location.reload(), (error) => { err.hidden = false; err.textContent = error.message; });
  });

  // Passage search: results show document, heading path and page, with the matched terms marked.
  const search = document.getElementById("search");
  if (search) search.addEventListener("submit", (e) => {
    e.preventDefault();
    const list = document.getElementById("search-results");
    const query = search.q.value.trim();
    if (!query) { list.replaceChildren(); return; }
    apiCall("/api/v1/search", { method: "POST", body: JSON.stringify({ query, mode: search.mode.value, k: 10 }) })
      .catch((error) => ({ results: [], error }))
      .then((body) => {
        list.replaceChildren();
        if (!body.results.length) {
          const li = document.createElement("li"); li.className = "empty";
          li.textContent = body.error ? body.error.message : "No passage matches.";
          list.append(li); return;
        }
        body.results.forEach((hit) => list.append(renderHit(hit, body.terms || [])));
      });
  });

  function renderHit(hit, terms) {
    const li = document.createElement("li");
    li.className = "hit"; li.dataset.chunk = hit.chunk_id;
    const where = document.createElement("div"); where.className = "where";
    // The title opens the passage among its document's others.
    const title = document.createElement("a");
    title.href = passagesUrl(hit.document_id, hit.chunk_id);
    title.title = "See it among the document's passages";
    const strong = document.createElement("strong"); strong.textContent = hit.title; title.append(strong);
    where.append(title);
    if (hit.heading_path) { const h = document.createElement("span"); h.textContent = hit.heading_path; where.append(h); }
    if (hit.page) { const p = document.createElement("span"); p.textContent = `page ${hit.page}`; where.append(p); }
    if (/^https?:\/\//.test(hit.url || "")) {  // read from the web: the page itself
      const web = document.createElement("a");
      web.href = hit.url; web.textContent = "the page"; web.title = hit.url; web.target = "_blank"; web.rel = "noopener noreferrer";
      where.append(web);
    }
    li.append(where, passageText(hit.text, terms));
    return li;
  }

  // The passage as the chat shows it (Markdown rendered: a table is a table), its text nodes then
  // marked for the query's terms.
  function passageText(source, terms) {
    const body = document.createElement("div"); body.className = "passage-text";
    if (window.DocentMarkdown) window.DocentMarkdown.render(body, source, false);
    else body.textContent = source;
    const nodes = [];
    const walker = document.createTreeWalker(body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) nodes.push(n);
    for (const n of nodes) {
      const marked = document.createDocumentFragment();
      highlight(marked, n.data, terms);
      n.replaceWith(marked);
    }
    return body;
  }

  // Marks words that start with a query term's stem; built from text nodes, never from HTML.
  // Accents folded one character for one ("Häuser" is read "Hauser"), so that a stem ("haus")
  // marks the word it came from and the marks fall on the text's own characters.
  // Chinese, Japanese and Korean terms are pairs of characters (or one), marked wherever they stand;
  // their characters are not folded (a Hangul syllable's first part is only its first consonant).
  const cjk = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/u;
  const fold = (s) => [...s].map((c) => (cjk.test(c) ? c : String.fromCodePoint(c.normalize("NFD").codePointAt(0)))).join("");
  const escape = (t) => fold(t).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  function highlight(node, text, terms) {
    const stems = terms.filter((t) => t.length > 1 && !cjk.test(t)).map(escape);
    const pairs = terms.filter((t) => cjk.test(t)).map(escape);
    if (!stems.length && !pairs.length) { node.append(document.createTextNode(text)); return; }
    const words = stems.length ? [`(?<![\\p{L}\\p{N}_])(?:${stems.join("|")})[\\p{L}\\p{N}_]*`] : [];
    const re = new RegExp(words.concat(pairs).join("|"), "giu");
    let last = 0;
    for (const m of fold(text).matchAll(re)) {
      node.append(document.createTextNode(text.slice(last, m.index)));
      const mark = document.createElement("mark"); mark.textContent = text.slice(m.index, m.index + m[0].length); node.append(mark);
      last = m.index + m[0].length;
    }
    node.append(document.createTextNode(text.slice(last)));
  }

  // Web pages and sites read into a collection: listed when their section opens, and looked at
  // again every two seconds while a reading is under way (its pages arrive as document rows).
  const SOURCE_STATUS = { queued: "waiting to be read", syncing: "being read…", ok: "up to date", failed: "failed" };
  const sourceTimers = new WeakMap();
  function sourceRow(s) {
    const li = document.createElement("li");
    li.className = "source"; li.dataset.source = s.id; li.dataset.status = s.status;
    const link = document.createElement("a");
    link.href = s.url; link.textContent = s.url; link.target = "_blank"; link.rel = "noopener noreferrer";
    const status = document.createElement("span"); status.className = "status";
    const parts = [SOURCE_STATUS[s.status] || s.status];
    if (s.progress) parts.push(`${s.progress.read} page${s.progress.read === 1 ? "" : "s"} so far, ${s.progress.waiting} to visit`);
    if (s.status === "failed" && s.error) parts[0] += `: ${s.error}`;
    if (s.status === "failed" && s.failures > 1) parts.push(`${s.failures} times in a row`);
    if (s.status === "failed" && s.next_sync_at) parts.push(`tried again ${dayTime(new Date(s.next_sync_at))}`);
    if (s.synced_at && s.status !== "syncing") parts.push(`${s.pages} page${s.pages === 1 ? "" : "s"}`, `read ${day(new Date(s.synced_at))}`);
    if (s.crawl) parts.push(`following links, up to ${s.max_pages} pages`);
    if (s.header_name) parts.push(`signs in with ${s.header_name}`);
    status.textContent = parts.join(" · ");
    const actions = document.createElement("span"); actions.className = "actions";
    for (const [action, label] of [["source-sync", "Read again"], ["source-remove", "Remove"]]) {
      const b = document.createElement("button");
      b.type = "button"; b.className = "ghost small"; b.dataset.action = action; b.textContent = label;
      b.setAttribute("aria-label", `${label} ${s.url}`);
      b.disabled = action === "source-sync" && (s.status === "queued" || s.status === "syncing");
      actions.append(b);
    }
    li.append(link, " ", status, actions, sourceSettings(s));
    if (s.skipped.length) {
      const more = document.createElement("details"); more.className = "skipped";
      const summary = document.createElement("summary");
      summary.textContent = `${s.skipped.length} left out`;
      const list = document.createElement("ul");
      for (const skip of s.skipped) {
        const item = document.createElement("li"); item.textContent = `${skip.url}: ${skip.reason}`; list.append(item);
      }
      more.append(summary, list); li.append(more);
    }
    return li;
  }
  // A source's settings: how often it is read, its page limit, its sign-in header (a new value, or
  // none); the header's value is never shown, only replaced.
  const REFRESH = [["24", "every day"], ["168", "every week"], ["1", "every hour"], ["0", "only when asked"]];
  function sourceSettings(s) {
    const more = document.createElement("details"); more.className = "source-settings";
    const summary = document.createElement("summary"); summary.textContent = "Change";
    summary.setAttribute("aria-label", `Change ${s.url}`);
    const form = document.createElement("form"); form.className = "source-form"; form.dataset.header = s.header_name || "";
    const field = (label, input) => { const l = document.createElement("label"); l.append(label, " ", input); return l; };
    const refresh = document.createElement("select"); refresh.name = "refresh_hours";
    const options = REFRESH.some(([v]) => Number(v) === s.refresh_hours) ? REFRESH : [...REFRESH, [String(s.refresh_hours), `every ${s.refresh_hours} hours`]];
    for (const [value, label] of options) refresh.append(new Option(label, value, false, Number(value) === s.refresh_hours));
    const pages = document.createElement("input"); pages.type = "number"; pages.name = "max_pages"; pages.min = "1"; pages.value = String(s.max_pages);
    const name = document.createElement("input"); name.name = "header_name"; name.maxLength = 100; name.autocomplete = "off";
    name.value = s.header_name || ""; name.placeholder = "Authorization";
    const value = document.createElement("input"); value.type = "password"; value.name = "header_value"; value.maxLength = 4096; value.autocomplete = "off";
    value.placeholder = s.header_name ? "unchanged" : "";
    const save = document.createElement("button"); save.type = "submit"; save.className = "primary small"; save.textContent = "Save";
    const error = document.createElement("p"); error.className = "error"; error.setAttribute("role", "alert"); error.hidden = true;
    form.append(field("Read again", refresh), field("Pages, at most", pages), field("Sign-in header", name), field("Its value", value), save, error);
    if (s.header_name) {
      const hint = document.createElement("p"); hint.className = "muted";
      hint.textContent = "Leave the value empty to keep the one set; clear the header's name to stop signing in.";
      form.insertBefore(hint, save);
    }
    more.append(summary, form);
    return more;
  }
  document.addEventListener("submit", async (e) => {
    const form = e.target.closest(".source-form");
    if (!form) return;
    e.preventDefault();
    const li = form.closest(".source"), details = form.closest(".web-sources"), error = form.querySelector(".error");
    const payload = { refresh_hours: Number(form.elements.refresh_hours.value), max_pages: Number(form.elements.max_pages.value) };
    const name = form.elements.header_name.value.trim(), value = form.elements.header_value.value;
    if (!name) Object.assign(payload, { header_name: "", header_value: "" });
    else if (value) Object.assign(payload, { header_name: name, header_value: value });
    else if (name !== form.dataset.header) {
      error.textContent = "Give the header's value too."; error.hidden = false;
      return;
    }
    try {
      await apiCall(`/api/v1/web-sources/${li.dataset.source}`, { method: "PATCH", body: JSON.stringify(payload) });
    } catch (err) {
      error.textContent = err.status ? err.message : "That did not work; try again.";
      error.hidden = false;
      return;
    }
    form.closest(".source-settings").open = false;
    showSources(details);
  });

  async function showSources(details) {
    clearTimeout(sourceTimers.get(details));
    const section = details.closest(".collection");
    let sources;
    try {
      sources = await apiCall(`/api/v1/collections/${section.dataset.collection}/web-sources`);
    } catch (err) {
      return;
    }
    const list = details.querySelector(".sources");
    // A source whose settings are open keeps its row (and what is being typed in it) until saved.
    const open = new Map([...list.querySelectorAll(".source")].filter((li) => li.querySelector(".source-settings[open]")).map((li) => [li.dataset.source, li]));
    list.replaceChildren(...sources.map((s) => open.get(String(s.id)) || sourceRow(s)));
    details.querySelector(".source-count").textContent = sources.length ? ` (${sources.length})` : "";
    if (details.open && sources.some((s) => s.status === "queued" || s.status === "syncing")) {
      sourceTimers.set(details, setTimeout(() => showSources(details), 2000));
    }
  }
  document.addEventListener("toggle", (e) => {
    if (e.target.matches && e.target.matches("details.web-sources") && e.target.open) showSources(e.target);
  }, true);  // toggle does not bubble
  document.addEventListener("submit", async (e) => {
    const form = e.target.closest(".add-source");
    if (!form) return;
    e.preventDefault();
    const details = form.closest(".web-sources"), section = form.closest(".collection");
    const error = form.querySelector(".error");
    const payload = {
      url: form.elements.url.value.trim(),
      crawl: form.elements.crawl.checked,
      max_pages: Number(form.elements.max_pages.value) || 50,
      refresh_hours: Number(form.elements.refresh_hours.value),
    };
    const headerName = form.elements.header_name.value.trim(), headerValue = form.elements.header_value.value;
    if (headerName || headerValue) Object.assign(payload, { header_name: headerName, header_value: headerValue });
    try {
      await apiCall(`/api/v1/collections/${section.dataset.collection}/web-sources`, { method: "POST", body: JSON.stringify(payload) });
    } catch (err) {
      error.textContent = err.status ? err.message : "The address could not be added; try again.";
      error.hidden = false;
      return;
    }
    error.hidden = true;
    form.elements.url.value = "";
    form.elements.header_name.value = ""; form.elements.header_value.value = "";  // not kept in the page
    form.querySelector(".sign-in-header").open = false;
    showSources(details);
  });
  document.addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-action=source-sync], button[data-action=source-remove]");
    if (!button) return;
    const li = button.closest(".source"), details = button.closest(".web-sources");
    const url = li.querySelector("a").textContent;
    const remove = button.dataset.action === "source-remove";
    if (remove && !confirm(`Stop reading ${url}, and delete the documents read from it?`)) return;
    try {
      await apiCall(`/api/v1/web-sources/${li.dataset.source}${remove ? "" : "/sync"}`, { method: remove ? "DELETE" : "POST" });
    } catch (err) {
      alert(err.status ? err.message : "That did not work; try again.");
      return;
    }
    showSources(details);
  });

  connect(500);
})();
