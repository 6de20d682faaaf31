// Library page: drag-and-drop uploads with a progress bar per file, fed live over /ws/documents/.
(function () {
  "use strict";
  const csrf = () => document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const rows = new Map();

  function row(list, id, title) {
    let li = id && list.ownerDocument.querySelector(`li[data-document="${id}"]`);
    if (!li) {
      li = document.createElement("li");
      li.className = "doc";
      const name = document.createElement("span"); name.className = "name"; name.textContent = title;
      const bar = document.createElement("progress"); bar.max = 1; bar.value = 0; bar.setAttribute("aria-label", "Progress of " + title);
      const status = document.createElement("span"); status.className = "status"; status.textContent = "uploading";
      li.append(name, bar, status);
      list.prepend(li);
    }
    return li;
  }

  function show(li, ev) {
    li.dataset.status = ev.status;
    li.querySelector("progress").value = ev.status === "ready" ? 1 : (ev.progress || 0);
    const status = li.querySelector(".status");
    status.textContent = ev.status === "ready" ? `ready · ${ev.chunks} chunks` : ev.status;
    let err = li.querySelector(".error");
    if (ev.error && ev.status === "failed") {
      if (!err) { err = document.createElement("span"); err.className = "error"; li.append(err); }
      err.textContent = ev.error;
    } else if (err) { err.remove(); }
  }

  function upload(section, file) {
    const list = section.querySelector(".documents");
    const li = row(list, null, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/v1/collections/${section.dataset.collection}/documents`);
    xhr.setRequestHeader("X-CSRFToken", csrf());
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) li.querySelector("progress").value = 0.05 * e.loaded / e.total; };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 202 || xhr.status === 200) {
        li.dataset.document = body.id;
        rows.set(String(body.id), li);
        show(li, { status: body.status, progress: 0.05, chunks: 0 });
        if (body.duplicate) li.querySelector(".status").textContent += " (already uploaded)";
        poll(body.id, li);
      } else {
        show(li, { status: "failed", error: (body.error && body.error.message) || `upload failed (${xhr.status})` });
      }
    };
    xhr.onerror = () => show(li, { status: "failed", error: "the upload was interrupted; check your connection" });
    const form = new FormData(); form.append("file", file);
    xhr.send(form);
  }

  // Polling backs the websocket up: it tells the truth even when a progress event was missed.
  function poll(id, li) {
    const tick = () => fetch(`/api/v1/documents/${id}`, { credentials: "same-origin" })
      .then((r) => r.ok ? r.json() : null)
      .then((d) => {
        if (!d) return;
        show(li, d);
        if (d.status === "queued" || d.status === "processing") setTimeout(tick, 3000);
      }).catch(() => setTimeout(tick, 5000));
    setTimeout(tick, 3000);
  }

  function connect(delay) {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${proto}://${location.host}/ws/documents/`);
    ws.onmessage = (m) => {
      const ev = JSON.parse(m.data);
      const li = rows.get(String(ev.id)) || document.querySelector(`li[data-document="${ev.id}"]`);
      if (li) show(li, ev);
    };
    ws.onopen = () => { delay = 500; document.body.dataset.live = "1"; };
    ws.onclose = () => { document.body.dataset.live = ""; setTimeout(() => connect(Math.min(delay * 2, 15000)), delay); };
  }

  document.querySelectorAll(".collection").forEach((section) => {
    const zone = section.querySelector(".dropzone");
    const input = zone.querySelector("input");
    input.addEventListener("change", () => { [...input.files].forEach((f) => upload(section, f)); input.value = ""; });
    zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); [...e.dataTransfer.files].forEach((f) => upload(section, f)); });
    section.querySelectorAll("li[data-document]").forEach((li) => {
      rows.set(li.dataset.document, li);
      if (li.dataset.status === "queued" || li.dataset.status === "processing") poll(li.dataset.document, li);
    });
  });

  const form = document.getElementById("new-collection");
  if (form) form.addEventListener("submit", (e) => {
    e.preventDefault();
    const err = form.querySelector(".error");
    fetch("/api/v1/collections", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify({ name: form.name.value, team: Number(form.team.value) }),
    }).then(async (r) => {
      if (r.ok) { location.reload(); return; }
      const body = await r.json().catch(() => ({}));
      err.hidden = false; err.textContent = (body.error && body.error.message) || "could not create the collection";
    });
  });

  connect(500);
})();
