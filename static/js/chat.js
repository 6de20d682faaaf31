// The chat page: conversations, a streamed answer per question over /ws/chat/, citations you can open,
// and answers that survive reloads and reconnects (resume by seq).
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const csrf = () => document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const ACTIVE = "docent.activeAnswer";
  const modelPick = document.getElementById("model");  // absent unless several models are offered
  const MODEL = `docent.model.${document.body.dataset.user || ""}`;
  const answers = new Map();
  // Every message of the open conversation, shown or not ({id, role, parent, reply_to}, tree order):
  // a conversation branches where a question was edited or an answer regenerated.
  const thread = new Map();
  let editing = null; // the user message element whose words the composer holds
  const outbox = [];
  // Asks, edits and regenerations until `accepted` (or an error) answers them: sent again on a new
  // socket when the old one closed first. The server knows a request_id it has seen and follows
  // the answer that request started, so the question is neither lost nor asked twice.
  // request_id -> { data: JSON frame, view, conversation, question: an ask's message element,
  //                 edit: {el, content} of a reworded question, regenerate: the answer redone }
  const requests = new Map();
  let view = 0;  // bumped whenever the page shows another conversation (or a new one)
  let ws = null;
  let delay = 500;
  let conversationId = null;
  let suggestions = null;  // [{collection, question}]: what the readable collections suggest asking

  const uuid = () => (window.crypto && crypto.randomUUID ? crypto.randomUUID()
    : "r" + Date.now().toString(36) + Math.random().toString(36).slice(2));

  async function api(path, options = {}) {
    const response = await fetch(path, {
      credentials: "same-origin",
      ...options,
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf(), ...(options.headers || {}) },
    });
    if (response.status === 204) return null;
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((body.error && body.error.message) || `request failed (${response.status})`);
    return body;
  }

  // Usage -------------------------------------------------------------------------------------
  // This month's tokens at the foot of the sidebar, and, under a quota, what is left and when it
  // renews: spent by the answers themselves, so it is read again after each one.
  async function showUsage() {
    const u = await api("/api/v1/usage").catch(() => null);
    if (!u) return;
    const el = $("usage"), n = (x) => x.toLocaleString();
    if (u.quota_tokens) {
      const renews = new Date(u.renews).toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
      el.textContent = `This month: ${n(u.total_tokens)} of ${n(u.quota_tokens)} tokens (renews ${renews})`;
      const meter = document.createElement("meter");
      meter.min = 0; meter.max = u.quota_tokens; meter.value = Math.min(u.total_tokens, u.quota_tokens);
      meter.low = 0.75 * u.quota_tokens; meter.high = 0.9 * u.quota_tokens; meter.optimum = 0;
      meter.setAttribute("aria-label", `${n(u.remaining_tokens)} tokens left this month`);
      el.append(meter);
    } else {
      el.textContent = `This month: ${n(u.total_tokens)} tokens`;
    }
    el.hidden = false;
  }

  // Sidebar -----------------------------------------------------------------------------------
  // The list comes a page at a time ("Show older conversations"); reloaded (after a pin, a rename, a
  // new answer), it keeps as many as were shown, so a conversation far down stays in view.
  const PAGE = 200;
  // Folders folded away in the sidebar (their ids, kept in this browser), and what a dragged row carries.
  const FOLDED = "docent.folded-folders", DRAGGED = "application/x-docent-conversation";
  const foldedFolders = () => {
    try { return new Set(JSON.parse(localStorage.getItem(FOLDED) || "[]").map(String)); } catch (e) { return new Set(); }
  };
  let shown = { q: "", count: 0 };
  // One load at a time, each starting from what the one before it showed: an older page fetched
  // beside a reload (a deletion's) would otherwise be appended to a list that no longer holds it.
  let loading = Promise.resolve();
  function loadConversations(older = false) {
    loading = loading.catch(() => null).then(() => loadList(older));  // a failed load stops none after it
    return loading;
  }
  async function loadList(older) {
    const list = $("conversations");
    const q = $("conversation-search").value.trim();
    older = older && q === shown.q;  // the search changed since: its list starts from the top
    const start = older ? shown.count : 0;
    const want = older ? start + PAGE : Math.max(PAGE, q === shown.q ? shown.count : 0);
    const items = [];
    let page = [];
    do {
      const params = new URLSearchParams({ limit: PAGE, offset: start + items.length });
      if (q) { params.set("q", q); params.set("with_archived", "true"); }  // a search finds archived ones too, last
      page = await api(`/api/v1/conversations?${params}`).catch(() => []);
      items.push(...page);
    } while (page.length === PAGE && start + items.length < want);
    // Typed on meanwhile: the load queued after this one shows it.
    if (q !== $("conversation-search").value.trim()) return;
    shown = { q, count: start + items.length };
    $("older-conversations").hidden = page.length < PAGE;
    (older ? list.append.bind(list) : list.replaceChildren.bind(list))(...items.map((c) => {
      const li = document.createElement("li");
      li.dataset.id = c.id;
      li.dataset.title = c.title;
      if (c.id === conversationId) li.setAttribute("aria-current", "true");
      li.classList.toggle("pinned", c.pinned);
      const open = document.createElement("button");
      open.type = "button"; open.className = "open"; open.textContent = c.title || "Untitled";
      // A search's result shows where its words were said, and opens the conversation there.
      const found = q && c.match ? { id: c.match.message_id, q } : null;
      if (found) {
        const said = document.createElement("span"); said.className = "snippet";
        said.append(marked(c.match.snippet, q));
        open.append(said);
      }
      open.addEventListener("click", () => { openConversation(c.id, undefined, found); closeSidebar(); });
      const pin = document.createElement("button");
      pin.type = "button"; pin.className = "ghost small pin"; pin.textContent = c.pinned ? "Unpin" : "Pin";
      pin.setAttribute("aria-label", `${c.pinned ? "Unpin" : "Pin"} ${c.title}`);
      pin.addEventListener("click", async () => {
        await api(`/api/v1/conversations/${c.id}`, { method: "PATCH", body: JSON.stringify({ pinned: !c.pinned }) }).catch(() => null);
        loadConversations();
      });
      const rename = document.createElement("button");
      rename.type = "button"; rename.className = "ghost small"; rename.textContent = "✎";
      rename.setAttribute("aria-label", `Rename ${c.title}`);
      rename.addEventListener("click", () => renameInPlace(c, open));
      const del = document.createElement("button");
      del.type = "button"; del.className = "ghost small"; del.textContent = "✕";
      del.setAttribute("aria-label", `Delete ${c.title}`);
      del.addEventListener("click", async () => {
        if (!confirm(`Delete “${c.title}”?`)) return;
        await api(`/api/v1/conversations/${c.id}`, { method: "DELETE" });
        if (c.id === conversationId) newConversation();
        loadConversations();
      });
      li.append(open, pin, rename, del);
      li.dataset.when = when(c);
      if (c.folder && !c.pinned && !c.archived) { li.dataset.folder = c.folder.id; li.dataset.folderName = c.folder.name; }
      li.classList.toggle("archived", c.archived);
      pin.hidden = c.archived;  // asking in it brings it back first
      li.draggable = true;  // onto a folder's heading
      li.addEventListener("dragstart", (e) => e.dataTransfer.setData(DRAGGED, c.id));
      return li;
    }));
    // A heading over the first of each group (drawn by the style sheet, above the row); a folder's
    // is a row of its own, which folds its conversations away and takes others dropped on it.
    list.querySelectorAll("li.folder-head").forEach((head) => head.remove());
    const folded = foldedFolders();
    let last = null;
    for (const li of [...list.children]) {
      const first = li.dataset.when !== last;
      last = li.dataset.when;
      if (first && li.dataset.folder) li.before(folderHead(li.dataset.folder, li.dataset.folderName, folded));
      if (first && !li.dataset.folder) li.dataset.group = li.dataset.when; else delete li.dataset.group;
      li.hidden = !!li.dataset.folder && folded.has(li.dataset.folder);
    }
  }

  function folderHead(id, name, folded) {
    const head = document.createElement("li");
    head.className = "folder-head"; head.dataset.folderHead = id;
    const fold = document.createElement("button");
    fold.type = "button"; fold.className = "fold"; fold.textContent = name;
    fold.setAttribute("aria-expanded", String(!folded.has(id)));
    fold.addEventListener("click", () => {
      const now = foldedFolders(), open = now.has(id);
      if (open) now.delete(id); else now.add(id);
      localStorage.setItem(FOLDED, JSON.stringify([...now]));
      fold.setAttribute("aria-expanded", String(open));
      $("conversations").querySelectorAll(`li[data-folder="${id}"]`).forEach((li) => { li.hidden = !open; });
    });
    head.addEventListener("dragover", (e) => {
      if (!e.dataTransfer.types.includes(DRAGGED)) return;
      e.preventDefault();
      head.classList.add("drop");
    });
    head.addEventListener("dragleave", () => head.classList.remove("drop"));
    head.addEventListener("drop", async (e) => {
      e.preventDefault();
      head.classList.remove("drop");
      const moved = e.dataTransfer.getData(DRAGGED);
      if (!moved) return;
      try {
        const c = await api(`/api/v1/conversations/${moved}`, { method: "PATCH", body: JSON.stringify({ folder_id: Number(id) }) });
        if (moved === conversationId) setFolder(c.folder);
      } catch (err) { alert("The conversation could not be moved; try again."); }
      loadConversations();
    });
    const start = document.createElement("button");
    start.type = "button"; start.className = "ghost small"; start.textContent = "+";
    start.setAttribute("aria-label", `New conversation in ${name}`);
    start.addEventListener("click", async () => {
      newConversation();
      setFolder({ id: Number(id), name });
      closeSidebar();
      $("question").focus();
      const folder = await api(`/api/v1/folders/${id}`).catch(() => null);
      if (folder && !conversationId && folderNow && folderNow.id === folder.id) startIn(folder);
    });
    head.append(fold, start);
    return head;
  }

  // A conversation renamed in its row: Enter (or leaving the box) keeps the new title, Esc the old.
  function renameInPlace(c, open) {
    const input = document.createElement("input");
    input.type = "text"; input.className = "rename"; input.value = c.title; input.maxLength = 200;
    input.setAttribute("aria-label", `New title for ${c.title}`);
    open.replaceWith(input);
    input.focus(); input.select();
    let ended = false;
    const end = async (keep) => {
      if (ended) return;
      ended = true;
      const title = input.value.trim();
      input.replaceWith(open);
      if (!keep || !title || title === c.title) { open.focus(); return; }
      open.textContent = title;
      open.focus();
      try {
        await api(`/api/v1/conversations/${c.id}`, { method: "PATCH", body: JSON.stringify({ title }) });
        if (c.id === conversationId) setTitle(title);
      } catch (e) {
        open.textContent = c.title;
        alert("The conversation could not be renamed; try again.");
      }
      loadConversations();
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); end(true); }
      if (e.key === "Escape") { e.stopPropagation(); end(false); }  // not the page's Esc (an edit's)
    });
    input.addEventListener("blur", () => end(true));
  }

  // The sidebar's groups, as the peers have them: pinned, then by the day of the last message.
  const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
  function when(c) {
    if (c.archived) return "Archived";
    if (c.pinned) return "Pinned";
    if (c.folder) return `Folder: ${c.folder.name}`;
    const now = new Date(), then = new Date(c.updated_at);
    const days = Math.round((new Date(now.getFullYear(), now.getMonth(), now.getDate()) - new Date(then.getFullYear(), then.getMonth(), then.getDate())) / 86400000);
    if (days <= 0) return "Today";
    if (days === 1) return "Yesterday";
    if (days < 7) return "Previous 7 days";
    if (days < 30) return "Previous 30 days";
    return then.getFullYear() === now.getFullYear() ? MONTHS[then.getMonth()] : `${MONTHS[then.getMonth()]} ${then.getFullYear()}`;
  }

  // The header's export link and share menu follow the open conversation.
  // Archive takes the open conversation out of the list (the account page lists it, and asking in it
  // brings it back); null: no conversation open.
  let archivedNow = null;
  function setArchived(archived) {
    archivedNow = archived;
    $("archive").hidden = archived === null;
    $("archive").textContent = archived ? "Unarchive" : "Archive";
    $("archive").setAttribute("aria-label", archived ? "Unarchive the conversation" : "Archive the conversation");
  }
  $("archive").addEventListener("click", async () => {
    const id = conversationId;
    try {
      const c = await api(`/api/v1/conversations/${id}`, { method: "PATCH", body: JSON.stringify({ archived: !archivedNow }) });
      if (id !== conversationId) return;
      setArchived(c.archived);
      $("connection").textContent = c.archived ? "Archived: out of the list until you ask in it again (your account page lists it)." : "Back in the list.";
    } catch (e) { showComposerError("The conversation could not be archived; try again."); return; }
    loadConversations();
  });

  // Folders: the open conversation's, chosen from the header's menu, where a new one is made and the
  // current one renamed or deleted (its conversations stay, out of any folder); the sidebar lists
  // each folder's conversations under its name. A new conversation's is where its first question
  // starts it. {id, name}, or null.
  let folderNow = null;
  function setFolder(folder) {
    folderNow = folder;
    $("folder-label").textContent = folder ? folder.name : "none";
  }
  function folderError(message) {
    $("folder-error").textContent = message || "";
    $("folder-error").hidden = !message;
  }
  $("folder").addEventListener("toggle", () => {
    if ($("folder").open) listFolders();
    else if ($("folder-form").elements.instructions) $("folder-form").elements.instructions.remove();
  });
  async function listFolders() {
    folderError("");
    const current = folderNow ? folderNow.id : null;
    $("folder-current").hidden = !folderNow;
    $("folder-form").hidden = true;  // until filled in: words typed before would be overwritten
    let folders;
    try { folders = await api("/api/v1/folders"); } catch (e) { folderError("Your folders could not be loaded; try again."); return; }
    const open = folderNow && folders.find((f) => f.id === folderNow.id);
    if (open) folderForm(open);
    $("folder-list").replaceChildren(...[{ id: null, name: "No folder" }, ...folders].map((f) => {
      const li = document.createElement("li"), b = document.createElement("button");
      b.type = "button"; b.className = "ghost small"; b.textContent = f.name;
      b.setAttribute("aria-pressed", String(f.id === current));
      b.addEventListener("click", () => moveTo(f.id === null ? null : f));
      li.append(b);
      return li;
    }));
  }
  // The open folder's instructions and collections (those of the scope menu: the ones readable).
  function folderForm(folder) {
    const form = $("folder-form");
    if (!form.elements.instructions) {  // made while the menu is open only (see the template)
      const box = document.createElement("textarea");
      box.name = "instructions"; box.rows = 3; box.maxLength = 1500;
      box.placeholder = "I work in the Berlin office; answer for it.";
      form.querySelector(".folder-instructions").append(" ", box);
    }
    form.elements.instructions.value = folder.instructions;
    $("folder-saved").textContent = "";
    const boxes = [...document.querySelectorAll("#scope input[name=collection]")].map((input) => {
      const label = document.createElement("label"), box = document.createElement("input");
      box.type = "checkbox"; box.name = "folder-collection"; box.value = input.value;
      box.checked = folder.collections.includes(Number(input.value));
      label.append(box, " ", input.parentElement.textContent.trim());
      return label;
    });
    $("folder-collections").replaceChildren($("folder-collections").querySelector("legend"), ...boxes);
    form.hidden = false;
  }
  $("folder-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const folder = folderNow;
    if (!folder) return;
    const collections = [...$("folder-form").querySelectorAll("input[name=folder-collection]:checked")].map((b) => Number(b.value));
    try {
      const saved = await api(`/api/v1/folders/${folder.id}`, { method: "PATCH", body: JSON.stringify({ instructions: $("folder-form").elements.instructions.value, collections }) });
      $("folder-saved").textContent = "Saved.";
      if (!conversationId) startIn(saved);  // a conversation not yet asked searches what it now says
    } catch (err) { folderError(err.message); }
  });
  // A new conversation in the folder: it searches the folder's collections, when it names any.
  function startIn(folder) {
    setFolder({ id: folder.id, name: folder.name });
    if (folder.collections.length && !documentScope.length) setScope(folder.collections);
  }
  async function moveTo(folder) {
    const id = conversationId;
    if (!id) {  // not asked yet: it starts there
      if (folder) startIn(folder); else setFolder(null);
      $("folder").open = false;
      return;
    }
    try {
      const c = await api(`/api/v1/conversations/${id}`, { method: "PATCH", body: JSON.stringify({ folder_id: folder && folder.id }) });
      if (id !== conversationId) return;
      setFolder(c.folder);
      $("folder").open = false;
    } catch (e) { folderError(e.message); return; }
    loadConversations();
  }
  $("folder-new").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("folder-new").elements.name;
    try {
      const folder = await api("/api/v1/folders", { method: "POST", body: JSON.stringify({ name: input.value }) });
      input.value = "";
      await moveTo(folder);
    } catch (err) { folderError(err.message); }
  });
  $("folder-rename").addEventListener("click", async () => {
    const folder = folderNow, name = folder && prompt("Rename the folder", folder.name);
    if (!name || !name.trim() || name.trim() === folder.name) return;
    try {
      const renamed = await api(`/api/v1/folders/${folder.id}`, { method: "PATCH", body: JSON.stringify({ name }) });
      if (folderNow && folderNow.id === renamed.id) setFolder({ id: renamed.id, name: renamed.name });
      listFolders();
    } catch (e) { folderError(e.message); return; }
    loadConversations();
  });
  $("folder-delete").addEventListener("click", async () => {
    const folder = folderNow;
    if (!folder || !confirm(`Delete the folder “${folder.name}”? Its conversations stay, out of any folder.`)) return;
    try { await api(`/api/v1/folders/${folder.id}`, { method: "DELETE" }); } catch (e) { folderError(e.message); return; }
    if (folderNow && folderNow.id === folder.id) setFolder(null);
    $("folder").open = false;
    loadConversations();
  });

  function setExport(id, sharedUrl, sharedAt) {
    $("export").hidden = !id;
    if (id) $("export").href = `/api/v1/conversations/${encodeURIComponent(id)}/export`;
    $("share").hidden = !id;
    $("share").open = false;
    showShared(sharedUrl || null, sharedAt);
  }

  // A link shows the conversation as far as it was shared; later messages need an update.
  function showShared(url, at) {
    $("share-create").hidden = !!url;
    $("share-made").hidden = !url;
    $("share-url").value = url || "";
    const when = at ? new Date(at).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : "";
    $("share-when").textContent = url ? `It shows this conversation as of ${when}; what you ask later stays yours until you update it.` : "";
    const summary = $("share").querySelector("summary");
    summary.textContent = url ? "Shared" : "Share";
    summary.setAttribute("aria-label", url ? "Shared: the conversation's read-only link" : "Share the conversation");
  }

  async function share(method) {
    try {
      const body = await api(`/api/v1/conversations/${encodeURIComponent(conversationId)}/share`, { method });
      showShared(body && body.shared_url, body && body.shared_at);
      if (body) copyShared();
    } catch (e) { flash($("share-note"), e.message); }
  }

  function copyShared() {
    $("share-url").select();
    // The clipboard needs a secure context (https or localhost); elsewhere the link stays selected.
    if (navigator.clipboard) navigator.clipboard.writeText($("share-url").value).then(() => flash($("share-copy"), "Copied"), () => {});
  }
  $("share-create").addEventListener("click", () => share("POST"));
  $("share-stop").addEventListener("click", () => share("DELETE"));
  $("share-update").addEventListener("click", () => share("POST"));
  $("share-copy").addEventListener("click", copyShared);

  function newConversation() {
    view++;
    cancelEdit();
    setDocuments([]);
    setScope(chosenScope());
    setModel(localStorage.getItem(MODEL) || "");
    $("attached").querySelectorAll("li:not([data-status=uploading]):not([data-status=reading]):not([data-status=waiting])").forEach((li) => li.remove());
    $("attached").hidden = !$("attached").children.length;
    conversationId = null;
    setExport(null);
    setArchived(null);
    setFolder(null);
    answers.clear();
    thread.clear();
    $("messages").replaceChildren($("empty-state") || emptyState);
    refreshCollections();
    setTitle("");
    sessionStorage.removeItem(ACTIVE);
    history.replaceState(null, "", "/");
    setBusy(null);
    document.querySelectorAll("#conversations li").forEach((li) => li.removeAttribute("aria-current"));
    $("question").focus();
  }

  // `text` as nodes, each occurrence of `q` (in any case) in a <mark>; built from text, never HTML.
  function marked(text, q) {
    const out = document.createDocumentFragment();
    const re = new RegExp(q.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/\s+/g, "\\s+"), "giu");
    let last = 0;
    for (const m of text.matchAll(re)) {
      if (!m[0]) break;
      out.append(text.slice(last, m.index));
      const mark = document.createElement("mark"); mark.textContent = m[0]; out.append(mark);
      last = m.index + m[0].length;
    }
    out.append(text.slice(last));
    return out;
  }

  // The message a search found, brought into view with the searched words marked. One in a version
  // not shown is said to be there, with a button that turns to it.
  function reveal(found) {
    const el = messageElement(found.id);
    if (!el) {
      if (!thread.has(found.id)) return;
      const note = document.createElement("p"); note.className = "found-elsewhere"; note.setAttribute("role", "status");
      const turn = document.createElement("button");
      turn.type = "button"; turn.className = "small"; turn.textContent = "Show that version";
      turn.addEventListener("click", () => { if (note.isConnected) showVersionOf(found.id, { found }); });
      note.append("Found in another version of this conversation. ", turn);
      $("messages").prepend(note);
      return;
    }
    const target = el.querySelector(".body") || el;
    const nodes = [];
    const walker = document.createTreeWalker(target, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) nodes.push(n);
    for (const n of nodes) if (n.parentElement.closest("button") === null) n.replaceWith(marked(n.data, found.q));
    el.classList.add("found");
    el.scrollIntoView({ block: "center" });
  }

  // The conversation's title heads the page and names the browser's tab (and its history entry).
  function setTitle(title) {
    $("chat-title").textContent = title || "New conversation";
    document.title = title ? `${title} · Docent` : "Docent";
  }

  function messageElement(id) {
    return [...document.querySelectorAll("#messages [data-message]")].find((x) => x.dataset.message === id);
  }

  // `anchor`: {id, back} of a version just turned to, kept in view with its pager's button focused.
  async function openConversation(id, resumeId, found, anchor) {
    let data;
    try { data = await api(`/api/v1/conversations/${id}`); } catch (e) { newConversation(); return; }
    view++;
    cancelEdit();
    conversationId = data.id;
    setExport(data.id, data.shared_url, data.shared_at);
    setArchived(!!data.archived);
    setFolder(data.folder || null);
    answers.clear();
    setTitle(data.title || "Conversation");
    history.replaceState(null, "", `/?c=${data.id}`);
    const box = $("messages");
    box.replaceChildren();
    setScope(data.collections);
    setDocuments(data.documents);
    setModel(data.model || "");
    thread.clear();
    for (const m of data.messages) thread.set(m.id, { id: m.id, role: m.role, parent: m.parent, reply_to: m.reply_to });
    for (const m of data.messages) {
      if (m.shown === false) continue;  // another version's, behind a pager
      if (m.role === "user") { addUserMessage(m.text, m.id); continue; }
      const a = addAnswer(m.id, m.reply_to);
      a.text = m.text; a.sources = m.sources || []; a.checks = m.checks || []; a.status = m.status;
      a.model = m.model || "";
      a.feedback = m.feedback || null;
      showRated(a);
      if (m.status === "pending" || m.status === "streaming" || m.id === resumeId) {
        a.text = ""; a.seq = 0; follow(a);  // replay it whole from its stream, then live
      } else {
        finish(a, m.status === "refused" ? "refused" : m.finish_reason || m.status);
        if (m.error_code === "moderation_blocked") a.meta.textContent = BLOCKED;
      }
      render(a);
    }
    document.querySelectorAll("#conversations li").forEach((li) => li.toggleAttribute("aria-current", li.dataset.id === data.id));
    markEditable();
    const turned = anchor && messageElement(anchor.id);
    if (turned) {
      turned.scrollIntoView({ block: "nearest" });
      const pager = turned.querySelector(".versions");
      const [same, other] = anchor.back ? [".previous", ".next"] : [".next", ".previous"];
      const button = pager.querySelector(same);  // at either end, the way back
      (button.disabled ? pager.querySelector(other) : button).focus();
    } else scrollDown(true);
    if (found) requestAnimationFrame(() => reveal(found));  // after the frame that renders the answers
  }

  // Messages ----------------------------------------------------------------------------------
  const emptyState = $("empty-state");

  function addUserMessage(text, id) {
    if ($("empty-state")) $("empty-state").remove();
    const el = document.createElement("article");
    el.className = "msg user";
    if (id) el.dataset.message = id;
    const body = document.createElement("div"); body.className = "body"; body.textContent = text;
    const tools = document.createElement("div"); tools.className = "tools";
    tools.append(tool("Edit", "Edit your question", () => startEdit(el)));
    el.append(body, tools, pagerFor(el, "question"));
    $("messages").append(el);
    scrollDown(true);
    return el;
  }

  // Any question can be reworded (a new version of it), and versions turned, once no answer is being
  // written.
  function markEditable() {
    document.querySelectorAll("#messages .msg.user").forEach((q) => {
      q.querySelector(".tools").hidden = !(q.dataset.message && !active);
    });
    document.querySelectorAll("#messages .msg[data-message]").forEach(updatePager);
  }

  // The versions of a message: a question's (it and its rewordings, following the same answer) or an
  // answer's (to the same question), oldest first.
  function versionsOf(id) {
    const m = thread.get(id);
    if (!m) return [];
    return [...thread.values()].filter((x) => x.role === m.role && (m.role === "user" ? x.parent === m.parent : x.reply_to === m.reply_to));
  }

  // "‹ 2 / 3 ›": turning shows that version and what followed it (read anew from the server, which
  // keeps the choice for next time and for the next question).
  function pagerFor(el, what) {
    const pager = document.createElement("div"); pager.className = "versions"; pager.hidden = true;
    const count = document.createElement("span"); count.className = "count";
    const turn = (by) => {
      const list = versionsOf(el.dataset.message);
      const to = list[list.findIndex((x) => x.id === el.dataset.message) + by];
      if (to && !active) showVersionOf(to.id, { anchor: { id: to.id, back: by < 0 } });
    };
    pager.append(tool("‹", `Previous version of the ${what}`, () => turn(-1)), count, tool("›", `Next version of the ${what}`, () => turn(1)));
    pager.firstChild.classList.add("previous"); pager.lastChild.classList.add("next");
    return pager;
  }

  // The conversation drawn anew through this message (chosen on the server, with the versions it
  // follows); `found` marks a search's words in it, `anchor` keeps a pager in view.
  async function showVersionOf(id, { found = null, anchor = null } = {}) {
    const shown = conversationId;
    try {
      await api(`/api/v1/messages/${id}/choose`, { method: "POST" });
    } catch (e) { showComposerError("That version could not be shown; try again."); return; }
    if (shown === conversationId) openConversation(conversationId, null, found, anchor);
  }

  function updatePager(el) {
    const pager = el.querySelector(".versions");
    if (!pager) return;
    const list = versionsOf(el.dataset.message);
    const i = list.findIndex((x) => x.id === el.dataset.message);
    pager.hidden = list.length < 2;
    pager.querySelector(".count").textContent = `${i + 1} / ${list.length}`;
    pager.querySelector(".previous").disabled = i <= 0 || !!active;
    pager.querySelector(".next").disabled = i >= list.length - 1 || !!active;
  }

  // What follows a message on the page goes: another branch's exchanges, once it is reworded or redone.
  function dropAfter(el) {
    while (el.nextElementSibling) {
      const gone = el.nextElementSibling;
      if (gone.dataset.message) answers.delete(gone.dataset.message);
      gone.remove();
    }
  }

  function startEdit(el) {
    editing = el;
    const box = $("question");
    box.value = el.querySelector(".body").textContent;
    autosize();
    box.focus();
    $("connection").textContent = "Editing your question: send it to have it answered anew (the earlier version stays, behind ‹ ›), or press Esc to cancel.";
  }

  function cancelEdit() {
    if (!editing) return;
    editing = null;
    $("question").value = "";
    autosize();
    $("connection").textContent = "";
  }

  // `replyTo`: the question's id.
  function addAnswer(messageId, replyTo) {
    if ($("empty-state")) $("empty-state").remove();
    const el = document.createElement("article");
    el.className = "msg assistant streaming";
    el.dataset.message = messageId;
    const body = document.createElement("div"); body.className = "body";
    const meta = document.createElement("div"); meta.className = "meta"; meta.textContent = "Searching your documents…";
    const tools = document.createElement("div"); tools.className = "tools";
    const a = { id: messageId, replyTo, el, body, meta, tools, text: "", seq: 0, sources: [], checks: [], done: false, status: "streaming" };
    tools.append(
      tool("Copy", "Copy the answer with its sources", () => navigator.clipboard && navigator.clipboard.writeText(copyText(a)).then(() => flash(meta, "Copied"))),
      tool("Regenerate", "Regenerate the answer", () => { if (!active) request({ type: "regenerate", message_id: a.id, request_id: uuid() }, { regenerate: a }); }),
      // Words, not emoji: a machine without an emoji font shows empty boxes.
      a.helpful = tool("Helpful", "Mark the answer helpful", () => feedback(a, 1)),
      // Rated so already: the form opens with what was said, which a new rating would clear.
      a.unhelpful = tool("Not helpful", "Mark the answer not helpful", () => (a.feedback && a.feedback.rating < 0 ? Promise.resolve(true) : feedback(a, -1)).then((ok) => ok && feedbackForm(a))),
    );
    const foot = document.createElement("div"); foot.className = "foot";  // the pager stays, the tools show on hover
    foot.append(pagerFor(el, "answer"), tools);
    el.append(body, meta, foot);
    $("messages").append(el);
    answers.set(messageId, a);
    showRated(a);
    return a;
  }

  // The answer as pasted elsewhere: its text, then what each [n] refers to.
  function copyText(a) {
    const cited = a.sources.filter((s) => a.text.includes(`[${s.n}]`)).sort((x, y) => x.n - y.n);
    if (!cited.length) return a.text;
    const lines = cited.map((s) => `[${s.n}] ${window.DocentCitations.where(s)}`);
    return `${a.text.trim()}\n\nSources:\n${lines.join("\n")}`;
  }

  function tool(label, aria, onClick) {
    const b = document.createElement("button");
    b.type = "button"; b.className = "ghost small"; b.textContent = label; b.setAttribute("aria-label", aria);
    b.addEventListener("click", onClick);
    return b;
  }

  let frame = 0;
  const dirty = new Set();
  function render(a) {
    dirty.add(a);
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      for (const x of dirty) {
        window.DocentMarkdown.render(x.body, x.text, (n, chip) => openSource(x, n, chip));
        window.DocentCitations.mark(x.body, x.sources, x.checks);
        x.body.querySelectorAll("pre").forEach(addCodeCopy);
        if (x.done) underAnswer(x);
      }
      dirty.clear();
      scrollDown(false);
    });
  }

  // Under a finished answer: the sources it cites (none under one that found nothing), and the model
  // that wrote it where there is a choice of models.
  function underAnswer(a) {
    if (a.list) a.list.remove();
    a.list = a.el.dataset.status === "refused" ? null
      : window.DocentCitations.list(a.text, a.sources, a.checks, (n, button) => openSource(a, n, button));
    if (a.list) a.meta.before(a.list);
    let by = a.el.querySelector(".foot .by");
    if (modelPick && a.model) {
      if (!by) { by = document.createElement("span"); by.className = "by muted"; a.el.querySelector(".foot").prepend(by); }
      by.textContent = a.model;
    } else if (by) by.remove();
  }

  // A code block in an answer (a command, a config) copies on its own.
  function addCodeCopy(pre) {
    const button = document.createElement("button");
    button.type = "button"; button.className = "ghost small copy-code"; button.textContent = "Copy";
    button.setAttribute("aria-label", "Copy the code");
    button.addEventListener("click", () => navigator.clipboard
      && navigator.clipboard.writeText(pre.querySelector("code").textContent).then(() => flash(button, "Copied")));
    pre.prepend(button);
  }

  const BLOCKED = "Not answered: the question goes against your organisation's content policy.";

  function finish(a, reason, usage) {
    if (!a.done && usage) showUsage();
    a.done = true;
    a.el.classList.remove("streaming");
    a.el.dataset.status = reason;
    const labels = { stop: "", length: "Answer cut at the length limit.", refused: "Nothing in the documents searched answers this: try other words, or other collections with \"Collections\" at the top.",
      stopped: "Stopped.", interrupted: "The answer was interrupted; what arrived is kept.", failed: "The answer failed." };
    a.meta.textContent = labels[reason] !== undefined ? labels[reason] : "";
    // The sources are listed under the answer (underAnswer); the meta says what to check in them.
    const toCheck = new Set(a.checks.map((c) => c.marker)).size;
    if (toCheck && reason !== "refused") {
      a.meta.textContent = `${a.meta.textContent} ${toCheck} citation${toCheck > 1 ? "s" : ""} to check (marked ?).`.trim();
    }
    render(a);
  }

  function scrollDown(force) {
    const box = $("messages");
    const near = box.scrollHeight - box.scrollTop - box.clientHeight < 160;
    if (force || near) box.scrollTop = box.scrollHeight;
  }

  // A short message in place of the element's text; flashes in a row all come back to the first text.
  function flash(el, text) {
    if (el.dataset.before === undefined) el.dataset.before = el.textContent;
    clearTimeout(el.flashTimer);
    el.textContent = text;
    el.flashTimer = setTimeout(() => { el.textContent = el.dataset.before; delete el.dataset.before; }, 1500);
  }

  // A rating is stored at the click; "Not helpful" then asks, in place, what was wrong (reasons to
  // tick and words, both optional), sent as the same rating with them.
  const REASONS = JSON.parse($("feedback-reasons").textContent);
  async function feedback(a, rating, details = {}) {
    try {
      a.feedback = await api(`/api/v1/messages/${a.id}/feedback`, { method: "POST", body: JSON.stringify({ rating, ...details }) });
    } catch (e) { flash(a.meta, e.message); return false; }
    showRated(a);
    if (rating > 0 && a.form) { a.form.remove(); a.form = null; }
    if (rating > 0 || details.reasons) flash(a.meta, "Thanks for the feedback");
    return true;
  }

  function showRated(a) {
    const rating = a.feedback ? a.feedback.rating : 0;
    a.helpful.setAttribute("aria-pressed", String(rating > 0));
    a.unhelpful.setAttribute("aria-pressed", String(rating < 0));
  }

  function feedbackForm(a) {
    if (a.form) { a.form.querySelector("input").focus(); return; }
    const given = a.feedback || {};
    const form = document.createElement("form"); form.className = "feedback-form";
    const set = document.createElement("fieldset");
    const legend = document.createElement("legend"); legend.textContent = "What was wrong? (optional)";
    set.append(legend);
    for (const r of REASONS) {
      const label = document.createElement("label");
      const box = document.createElement("input"); box.type = "checkbox"; box.value = r.code;
      box.checked = (given.reasons || []).includes(r.code);
      label.append(box, ` ${r.label}`);
      set.append(label);
    }
    const words = document.createElement("textarea");
    words.rows = 2; words.maxLength = 2000; words.value = given.comment || "";
    words.placeholder = "Tell us more (optional)"; words.setAttribute("aria-label", "Tell us more (optional)");
    const send = document.createElement("button"); send.type = "submit"; send.className = "small"; send.textContent = "Send";
    const skip = tool("Skip", "Skip", () => close());
    const row = document.createElement("div"); row.className = "row"; row.append(send, skip);
    form.append(set, words, row);
    const close = () => { form.remove(); a.form = null; };
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const reasons = [...form.querySelectorAll("input:checked")].map((x) => x.value);
      if (await feedback(a, -1, { reasons, comment: words.value })) close();
    });
    form.addEventListener("keydown", (e) => { if (e.key === "Escape") { e.stopPropagation(); close(); } });
    a.form = form;
    a.el.append(form);
    form.querySelector("input").focus();
  }

  // For each [n] of the answer, the text since the previous marker, cut into sentences: what the
  // answer says this passage supports.
  function citedSentences(text, n) {
    const found = [];
    let prev = 0;
    for (const m of text.matchAll(/\[(\d{1,3})\]/g)) {
      if (Number(m[1]) === n) {
        const said = text.slice(prev, m.index);
        const parts = said.split(/(?<=[.!?:])\s+|\n+/)
          .map((x) => x.replace(/^\s*[-*•]\s+/, "").replace(/^…/, "").trim()).filter(Boolean);
        // The quote as one line too: a table row is quoted as "column: value; column: value".
        parts.line = said.split("\n").pop().replace(/^\s*[-*•]\s+/, "").replace(/^From your documents:\s*/, "").replace(/^…/, "");
        if (parts.length) found.push(parts);
      }
      prev = m.index + m[0].length;
    }
    return found;
  }

  // The passage rendered from Markdown (a table as a table; a "[n]" in it stays text), with what the
  // answer cites marked where the passage holds it word for word (as the offline answerer quotes; a
  // model's paraphrase is left unmarked): for each citation the longest run of its last sentences
  // found, of three words at least, or the table row holding every value of a quoted row
  // ("city: Berlin; cap: 160 EUR"). The first mark is scrolled to.
  const plain = (x) => x.replace(/[`*]/g, "");

  function citedRow(root, quote) {
    const squash = (x) => x.replace(/\s+/g, " ").trim();
    const values = plain(quote).trim().replace(/[.]$/, "").split(/;\s+/)
      .map((p) => squash(p.replace(/^[^:]*:\s*/, ""))).filter(Boolean);
    if (values.length < 2) return null;
    return [...root.querySelectorAll("tbody tr")].find((tr) => {
      const row = [...tr.cells].map((c) => squash(c.textContent)).join(" | ");
      return values.every((v) => row.includes(v));
    }) || null;
  }

  // The rendered text as one string (a space between blocks) and where each text node starts in it.
  function textIndex(root) {
    const pieces = [];
    let text = "", lastBlock = null;
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const block = n.parentElement.closest("p,li,td,th,pre,h3,h4,h5,h6,blockquote");
      if (lastBlock && block !== lastBlock) text += " ";
      lastBlock = block;
      pieces.push([n, text.length]);
      text += n.data;
    }
    return { text, pieces };
  }

  function markSpan(index, a, b) {
    // Last node first: splitting a text node leaves the offsets of its earlier part as they were.
    for (const [n, start] of [...index.pieces].reverse()) {
      const end = start + n.data.length;
      if (end <= a || start >= b) continue;
      const range = document.createRange();
      range.setStart(n, Math.max(a, start) - start);
      range.setEnd(n, Math.min(b, end) - start);
      range.surroundContents(document.createElement("mark"));
    }
  }

  function showPassage(node, text, cited) {
    window.DocentMarkdown.render(node, text, false);
    const escape = (x) => x.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const index = textIndex(node);
    const spans = [];
    for (const parts of cited) {
      const row = citedRow(node, parts.line || "");
      if (row) { row.classList.add("cited"); continue; }
      for (let k = parts.length; k >= 1; k--) {
        const words = plain(parts.slice(-k).join(" ")).replace(/[.!?:]+$/, "").split(/\s+/).filter(Boolean);
        if (words.length < 3) continue;
        const m = new RegExp(words.map(escape).join("\\s+")).exec(index.text);
        if (!m) continue;
        const [a, b] = [m.index, m.index + m[0].length];
        if (!spans.some(([x, y]) => a < y && x < b)) spans.push([a, b]);
        break;
      }
    }
    spans.sort((x, y) => y[0] - x[0]).forEach(([a, b]) => markSpan(index, a, b));
    const first = node.querySelector("mark, tr.cited");
    if (first) first.scrollIntoView({ block: "nearest" });
  }

  function openSource(a, n, chip) {
    window.DocentCitations.open(
      a.sources.find((s) => s.n === n), n, chip,
      (el, source) => showPassage(el, source.text, citedSentences(a.text, n)),
      a.done ? "This source is not available." : "Sources appear when the answer is complete.",
    );
  }

  // Socket ------------------------------------------------------------------------------------
  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${proto}://${location.host}/ws/chat/`);
    ws.onopen = () => {
      delay = 500;
      $("connection").textContent = "";
      document.body.dataset.connected = "1";
      for (const a of answers.values()) if (!a.done && a.following) resume(a);
      for (const r of requests.values()) ws.send(r.data);
      while (outbox.length) ws.send(outbox.shift());
    };
    ws.onmessage = (m) => handle(JSON.parse(m.data));
    ws.onclose = () => {
      document.body.dataset.connected = "";
      $("connection").textContent = "Connection lost — reconnecting…";
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }

  function send(frame) {
    const data = JSON.stringify(frame);
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(data); else outbox.push(data);
  }

  function request(frame, extra = {}) {
    const data = JSON.stringify(frame);
    requests.set(frame.request_id, { data, view, conversation: conversationId, ...extra });
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(data);  // else the socket's open sends it
  }

  function follow(a) {
    a.following = true;
    setBusy(a);
    sessionStorage.setItem(ACTIVE, JSON.stringify({ conversation_id: conversationId, message_id: a.id }));
    // A socket still opening resumes every followed answer itself (onopen): one resume, not two.
    if (ws && ws.readyState === WebSocket.OPEN) resume(a);
  }

  function resume(a) {
    a.asked = a.seq;
    send({ type: "resume", message_id: a.id, after: a.seq });
  }

  function handle(ev) {
    const sent = (ev.request_id && requests.get(ev.request_id)) || {};
    if (ev.request_id) requests.delete(ev.request_id);
    if (sent.data && sent.view !== view) {
      // Answered after the page moved on (a request sent again on a new socket, say). Taken: it is
      // answered in its own conversation, listed, and not added to another one shown; the same one
      // shown again is read anew, with the answer followed. Refused: said, with the words refused,
      // but not put in the box of a conversation they were not asked in (nor is the busy state of
      // the one shown touched).
      if (ev.type === "accepted") {
        if (sent.conversation && sent.conversation === conversationId) openConversation(conversationId, ev.message_id);
        else loadConversations();
      } else if (ev.type === "error") {
        const words = sent.edit ? sent.edit.content : sent.question ? sent.question.querySelector(".body").textContent : "";
        const quoted = words.length > 200 ? `${words.slice(0, 199)}…` : words;
        showComposerError(quoted ? `“${quoted}” was not sent: ${errorText(ev)}` : errorText(ev));
      }
      return;
    }
    if (ev.type === "accepted") {
      const isNew = conversationId !== ev.conversation_id;
      conversationId = ev.conversation_id;
      if (isNew) setExport(conversationId);  // a new conversation is not shared yet (its folder is the one it was asked in)
      const unarchived = archivedNow === true;  // asked in again: the server brought it back
      setArchived(false);
      const edit = sent.edit;
      if ((sent.question || sent.edit) && ev.user_message_id && !thread.has(ev.user_message_id)) {
        thread.set(ev.user_message_id, { id: ev.user_message_id, role: "user", parent: ev.parent, reply_to: null });
      }
      if (sent.question && ev.user_message_id) sent.question.dataset.message = ev.user_message_id;
      if (edit && edit.el.isConnected) {
        // The reworded question is a new version of it; what followed the old words stays with
        // them, behind the pager.
        dropAfter(edit.el);
        edit.el.dataset.message = ev.user_message_id;
        edit.el.querySelector(".body").textContent = edit.content;
      }
      const redone = sent.regenerate;
      if (redone && redone.el.isConnected && !answers.has(ev.message_id)) {
        // The new version takes the old one's place; the old one keeps what followed it.
        dropAfter(redone.el);
        answers.delete(redone.id);
        redone.el.remove();
      }
      if (!thread.has(ev.message_id)) thread.set(ev.message_id, { id: ev.message_id, role: "assistant", parent: null, reply_to: ev.user_message_id });
      let a = answers.get(ev.message_id);
      if (!a) a = addAnswer(ev.message_id, ev.user_message_id);
      a.following = true;
      setBusy(a);
      sessionStorage.setItem(ACTIVE, JSON.stringify({ conversation_id: conversationId, message_id: a.id }));
      history.replaceState(null, "", `/?c=${conversationId}`);
      if (isNew || edit || unarchived) loadConversations().then(() => {  // an edited first question may retitle it
        const li = document.querySelector(`#conversations li[data-id="${conversationId}"]`);
        if (li) setTitle(li.dataset.title);
      });
      return;
    }
    const a = ev.message_id && answers.get(ev.message_id);
    if (ev.type === "error") {
      if (a) {
        a.text = a.text || "";
        finish(a, "failed");
        a.meta.textContent = errorText(ev);
        a.following = false;
        sessionStorage.removeItem(ACTIVE);
        setBusy(null);
      } else {
        const el = sent.question;
        showComposerError(errorText(ev));
        const box = $("question");
        if (el && !box.value.trim()) {
          // Not taken (too many questions, say): its words go back in the box, to send when the
          // error allows, and it leaves the conversation, which does not hold it.
          box.value = el.querySelector(".body").textContent;
          autosize();
          el.remove();
          if (!$("messages").children.length) $("messages").replaceChildren(emptyState);
        } else if (el) unsent(el);  // the box holds new words: kept, faded, to send again
        const edit = sent.edit;
        if (edit && !box.value.trim() && edit.el.isConnected) {
          // A reworded question not taken: its new words go back in the box, still editing it.
          editing = edit.el;
          box.value = edit.content;
          autosize();
        }
        setBusy(null);
      }
      return;
    }
    if (!a || ev.seq <= a.seq) return; // replayed twice after a reconnect: already shown
    if (ev.prev_seq !== undefined && ev.prev_seq !== a.seq && !(ev.type === "delta" && ev.replace)) {
      // Not the frame after the one shown: a reader this page left (or a second one, merging its
      // deltas elsewhere) is still sending. Ask once for what follows the text shown.
      if (a.following && a.asked !== a.seq) resume(a);
      return;
    }
    a.seq = ev.seq;
    if (ev.type === "delta") {
      a.text = ev.replace ? ev.text : a.text + ev.text;
      if (a.meta.textContent === "Searching your documents…") a.meta.textContent = "";
      render(a);
    } else if (ev.type === "sources") {
      a.sources = ev.sources || [];
      a.checks = ev.checks || [];
      render(a);
    } else if (ev.type === "done") {
      if (ev.model) a.model = ev.model;
      finish(a, ev.finish_reason, ev.usage);
      a.following = false;
      sessionStorage.removeItem(ACTIVE);
      setBusy(null);
      $("live").textContent = ev.finish_reason === "refused" ? "No answer found in your documents." : "Answer complete.";
    }
  }

  // A question not taken while the box held other words stays, faded, with a button to send it again
  // (once the error allows): it then becomes the conversation's latest question.
  function unsent(el) {
    el.classList.add("unsent");
    if (el.querySelector(".resend")) return;
    const again = document.createElement("button");
    again.type = "button"; again.className = "small resend"; again.textContent = "Send again";
    again.addEventListener("click", () => {
      if (active) { showComposerError("An answer is still being written: send it again once it ends."); return; }
      again.remove();
      el.classList.remove("unsent");
      $("messages").append(el);
      request(askFrame(el.querySelector(".body").textContent), { question: el });
      $("connection").textContent = "";
      markEditable();
    });
    el.append(again);
  }

  // Composer ----------------------------------------------------------------------------------
  let active = null;
  function setBusy(a) {
    active = a;
    $("stop").hidden = !a;
    $("send").hidden = !!a;
    markEditable();
  }

  // The server's message, with when to try again unless it already says so (a rate limit does; a
  // spent monthly quota says when it renews, weeks away).
  function errorText(ev) {
    if (!ev.retry_after || ev.code === "quota_exceeded" || /try again/i.test(ev.message)) return ev.message;
    const s = Math.ceil(ev.retry_after);
    return `${ev.message} Try again in ${s < 120 ? `${s} s` : `${Math.ceil(s / 60)} min`}.`;
  }

  function showComposerError(text) {
    $("connection").textContent = text;
  }

  // Narrowed to documents (the library's "Ask"): the scope then names them, and the collection boxes
  // wait until the narrowing is lifted. Sent with every question, so lifting it reaches the server.
  let documentScope = [];  // [{id, title}]
  // The keys' hint does not fit a phone's width (nor do a touch keyboard's keys follow it).
  const narrow = window.matchMedia("(max-width: 640px)");
  const hinted = $("question").placeholder;
  const placeholder = () => (narrow.matches ? "Ask a question…" : hinted);
  function setDocuments(docs) {
    documentScope = docs || [];
    $("question").placeholder = documentScope.length === 1 ? `Ask about ${documentScope[0].title}…` : placeholder();
    $("scope-documents").hidden = !documentScope.length;
    $("scope-documents-names").textContent = documentScope.map((d) => d.title).join(", ");
    document.querySelectorAll("#scope input[name=collection]").forEach((i) => { i.disabled = documentScope.length > 0; });
    updateScopeLabel();
  }
  $("scope-documents-clear").addEventListener("click", () => setDocuments([]));
  $("question").placeholder = placeholder();
  narrow.addEventListener("change", () => { if (!documentScope.length) $("question").placeholder = placeholder(); });

  // Attach: files chosen in the composer are uploaded to the chosen collection (the library's upload,
  // so a duplicate is not read again); once each is read, the conversation asks about the files
  // attached. A question waits until they are read: asked before, it would not find them.
  let reading = 0;
  function attachedRow(name) {
    const li = document.createElement("li");
    const title = document.createElement("span"); title.className = "name"; title.textContent = name;
    const status = document.createElement("span"); status.className = "status"; status.textContent = "uploading";
    li.append(title, " ", status);
    $("attached").append(li);
    $("attached").hidden = false;
    return li;
  }
  function attachStatus(li, state, text) {
    li.dataset.status = state;
    li.querySelector(".status").textContent = text;
  }
  function attachDone(li, state, text, id) {
    attachStatus(li, state, text);
    reading -= 1;
    // Once done, a row can go; a ready file's goes with it from the question's scope.
    const remove = document.createElement("button");
    remove.type = "button"; remove.className = "ghost small"; remove.textContent = "×";
    remove.setAttribute("aria-label", `Remove ${li.querySelector(".name").textContent}`);
    remove.addEventListener("click", () => {
      if (id !== undefined) setDocuments(documentScope.filter((d) => d.id !== id));
      li.remove();
      $("attached").hidden = !$("attached").children.length;
    });
    li.append(" ", remove);
  }
  function attach(file, collection, li) {
    if (!li) { li = attachedRow(file.name); reading += 1; }
    const form = new FormData();
    form.append("file", file);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/v1/collections/${encodeURIComponent(collection)}/documents`);
    xhr.setRequestHeader("X-CSRFToken", csrf());
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) attachStatus(li, "uploading", `uploading ${Math.round(100 * e.loaded / e.total)}%`); };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = {}; }
      if (xhr.status === 202 || xhr.status === 200) { watchReading(body.id, li); return; }
      if (xhr.status === 429) {
        const wait = Number(xhr.getResponseHeader("Retry-After")) || 5;
        attachStatus(li, "waiting", `upload rate limit: sending again in ${wait} s`);
        setTimeout(() => attach(file, collection, li), wait * 1000);
        return;
      }
      attachDone(li, "failed", (body.error && body.error.message) || `upload failed (${xhr.status})`);
    };
    xhr.onerror = () => attachDone(li, "failed", "the upload was interrupted; check your connection");
    xhr.send(form);
  }
  // A web page attached: the collection reads it as a web source (one already read is the one
  // attached), then the page's document is watched as an uploaded file's is.
  async function attachPage(url, collection) {
    const li = attachedRow(url); reading += 1;
    attachStatus(li, "reading", "fetching the page");
    let source;
    try {
      source = await api(`/api/v1/collections/${encodeURIComponent(collection)}/web-sources`, { method: "POST", body: JSON.stringify({ url, crawl: false }) });
    } catch (err) {
      attachDone(li, "failed", err.message);
      return;
    }
    watchPage(collection, source.id, li);
  }
  async function watchPage(collection, id, li, misses = 0) {
    const base = `/api/v1/collections/${encodeURIComponent(collection)}`;
    let pages, source;
    const page = () => api(`${base}/documents?source=${encodeURIComponent(id)}&limit=1`);
    try {
      // Its page once it is a document; else how the reading goes (it may have found none). A
      // reading that ended since the first look made its document before it ended: look again.
      pages = await page();
      if (!pages.length) {
        source = (await api(`${base}/web-sources`)).find((s) => s.id === id) || null;
        if (source && (source.status === "ok" || source.status === "failed")) pages = await page();
      }
    } catch (err) {
      if (misses >= 5) attachDone(li, "failed", err.message);
      else setTimeout(() => watchPage(collection, id, li, misses + 1), 2000);
      return;
    }
    if (pages.length) { li.querySelector(".name").textContent = pages[0].title; watchReading(pages[0].id, li); return; }
    if (!source) { attachDone(li, "failed", "the page was removed from the collection"); return; }
    if (source.status === "ok" || source.status === "failed") {
      const why = source.error || (source.skipped[0] && source.skipped[0].reason) || "no page could be read there";
      attachDone(li, "failed", why);
      return;
    }
    setTimeout(() => watchPage(collection, id, li), 1000);
  }
  async function watchReading(id, li, misses = 0) {
    let d;
    try {
      d = await api(`/api/v1/documents/${encodeURIComponent(id)}`);
    } catch (err) {
      // A network blip is waited out; a document gone (deleted meanwhile) must not hold questions back.
      if (misses >= 5) attachDone(li, "failed", err.message);
      else setTimeout(() => watchReading(id, li, misses + 1), 2000);
      return;
    }
    if (d.status === "ready") {
      if (!documentScope.some((x) => x.id === d.id)) setDocuments([...documentScope, { id: d.id, title: d.title }]);
      attachDone(li, "ready", "ready: questions ask about it", d.id);
    } else if (d.status === "failed") {
      attachDone(li, "failed", d.error || "it could not be read");
    } else {
      attachStatus(li, "reading", d.status === "queued" ? "waiting to be read" : `reading ${Math.round(100 * (d.progress || 0))}%`);
      setTimeout(() => watchReading(id, li), 1000);
    }
  }
  // A file dropped where nothing takes it would make the browser open it in place of the chat.
  const carriesFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes("Files");
  document.addEventListener("dragover", (e) => { if (carriesFiles(e)) e.preventDefault(); });
  document.addEventListener("drop", (e) => { if (carriesFiles(e)) e.preventDefault(); });
  if ($("attach-file")) {
    // The collection the conversation searches, when one is chosen and the user's team may add to
    // it (one shared with them is read-only), is the likely home; else the one picked in the menu.
    const home = () => {
      const chosen = (selectedCollections() || []).map(String);
      const options = [...$("attach-collection").options].map((o) => o.value);
      return chosen.find((id) => options.includes(id)) || $("attach-collection").value;
    };
    $("attach").addEventListener("toggle", () => {
      if ($("attach").open) $("attach-collection").value = home();
    });
    // Files dropped anywhere on the conversation are attached the same way.
    const area = document.querySelector(".chat-main");
    area.addEventListener("dragover", (e) => { if (carriesFiles(e)) { e.preventDefault(); area.classList.add("dropping"); } });
    area.addEventListener("dragleave", (e) => { if (!area.contains(e.relatedTarget)) area.classList.remove("dropping"); });
    area.addEventListener("drop", (e) => {
      area.classList.remove("dropping");
      if (!e.dataTransfer || !e.dataTransfer.files.length) return;
      e.preventDefault();
      const collection = home();
      [...e.dataTransfer.files].forEach((f) => attach(f, collection));
    });
    const addPage = () => {
      const url = $("attach-url").value.trim();
      if (!url) { $("attach-url").focus(); return; }
      attachPage(url, $("attach-collection").value);
      $("attach-url").value = "";
      $("attach").open = false;
      $("question").focus();
    };
    $("attach-url-add").addEventListener("click", addPage);
    // Enter here attaches the page: the composer's form would otherwise send the question.
    $("attach-url").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); addPage(); } });
    $("attach-file").addEventListener("change", () => {
      const collection = $("attach-collection").value;
      [...$("attach-file").files].forEach((f) => attach(f, collection));
      $("attach-file").value = "";
      $("attach").open = false;
      $("question").focus();
    });
  }

  function selectedCollections() {
    const ids = [...document.querySelectorAll("#scope input[name=collection]:checked")].map((i) => Number(i.value));
    return ids.length ? ids : undefined;
  }

  // The collections last chosen by hand are where a new conversation starts, also after a reload;
  // an opened conversation shows its own. Kept per user: a browser may be shared.
  const SCOPE = `docent.scope.${document.body.dataset.user || ""}`;
  function chosenScope() {
    try { return JSON.parse(localStorage.getItem(SCOPE) || "[]"); } catch (e) { return []; }
  }

  function setScope(ids) {
    document.querySelectorAll("#scope input[name=collection]").forEach((i) => { i.checked = (ids || []).includes(Number(i.value)); });
    updateScopeLabel();
  }

  function updateScopeLabel() {
    $("scope-kind").textContent = documentScope.length ? (documentScope.length > 1 ? "Documents" : "Document") : "Collections";
    if (documentScope.length) { $("scope-label").textContent = documentScope.map((d) => d.title).join(", "); return; }
    const names = [...document.querySelectorAll("#scope input[name=collection]:checked")].map((i) => i.parentElement.textContent.split("·")[0].trim());
    $("scope-label").textContent = names.length ? names.join(", ") : "all";
    showSuggestions();
  }

  // The questions the collections in scope suggest (their team admins' choice), offered until the
  // conversation starts; a click asks one. None while the scope is a document.
  // (Held through emptyState: while a conversation is open, the empty state is out of the page.)
  function showSuggestions() {
    const offered = emptyState.querySelector("#empty-suggestions");
    if (suggestions === null) suggestions = JSON.parse(emptyState.querySelector("#suggestions-data").textContent);
    const chosen = selectedCollections();
    const inScope = documentScope.length ? [] : suggestions.filter((s) => !chosen || chosen.includes(s.collection));
    const questions = [...new Set(inScope.map((s) => s.question))].slice(0, 6);
    offered.replaceChildren(...questions.map((question) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button"; button.className = "suggestion"; button.textContent = question;
      li.append(button);
      return li;
    }));
    offered.hidden = !questions.length;
  }
  emptyState.querySelector("#empty-suggestions").addEventListener("click", (e) => {
    const button = e.target.closest("button.suggestion");
    if (!button || active) return;
    $("question").value = button.textContent;
    $("composer").requestSubmit();
  });

  // A question as the socket takes it: in the conversation shown, its scope and its chat model.
  function askFrame(content) {
    return { type: "ask", request_id: uuid(), conversation_id: conversationId, content, collections: selectedCollections(),
      documents: documentScope.map((d) => d.id), ...(modelPick ? { model: modelPick.value } : {}),
      ...(!conversationId && folderNow ? { folder: folderNow.id } : {}) };  // a new one starts in it
  }

  // The chat model, where the operator offers more than one: chosen per conversation (the choice is
  // kept for the next new one), changed for the answers that follow.
  function setModel(name) {
    if (!modelPick) return;
    modelPick.value = [...modelPick.options].some((o) => o.value === name) ? name : "";
  }
  if (modelPick) {
    setModel(localStorage.getItem(MODEL) || "");
    modelPick.addEventListener("change", () => {
      localStorage.setItem(MODEL, modelPick.value);
      if (conversationId) {
        api(`/api/v1/conversations/${conversationId}`, { method: "PATCH", body: JSON.stringify({ model: modelPick.value }) })
          .catch(() => showComposerError("The model could not be changed; try again."));
      }
    });
  }

  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const box = $("question");
    const content = box.value.trim();
    if (!content || active) return;
    if (reading > 0) { showComposerError("An attached file is still being read; ask once it is ready."); return; }
    const requestId = uuid();
    if (editing) {
      request({ type: "edit", request_id: requestId, message_id: editing.dataset.message, content }, { edit: { el: editing, content } });
      editing = null;
    } else {
      request(askFrame(content), { question: addUserMessage(content) });
    }
    box.value = "";
    autosize();
    $("connection").textContent = "";
  });

  // The box's menu: saved prompts for "/name", documents for "#name". One listbox, its options
  // chosen with the arrows and Enter or Tab (or a click), closed with Esc; the box keeps the focus.
  let menuChoices = [], menuAt = 0, menuUse = null;
  function showMenu(label, choices, render, use) {
    const menu = $("prompt-menu"), box = $("question");
    menuChoices = choices; menuUse = use;
    menu.hidden = !choices.length;
    if (menu.hidden) { box.removeAttribute("aria-activedescendant"); return; }
    menu.setAttribute("aria-label", label);
    menuAt = Math.min(menuAt, choices.length - 1);
    menu.replaceChildren(...choices.map((c, i) => {
      const li = document.createElement("li");
      li.id = `menu-${i}`; li.setAttribute("role", "option"); li.setAttribute("aria-selected", String(i === menuAt));
      li.append(...render(c));
      li.addEventListener("mousedown", (e) => { e.preventDefault(); use(c); });  // the box keeps focus
      return li;
    }));
    box.setAttribute("aria-activedescendant", `menu-${menuAt}`);
  }
  function closeMenu() { showMenu("", [], null, null); }
  function rerenderMenu() {
    const menu = $("prompt-menu");
    menu.querySelectorAll("[role=option]").forEach((li, i) => li.setAttribute("aria-selected", String(i === menuAt)));
    $("question").setAttribute("aria-activedescendant", `menu-${menuAt}`);
    menu.children[menuAt].scrollIntoView({ block: "nearest" });
  }
  const tag = (text) => { const t = document.createElement("span"); t.className = "team"; t.textContent = text; return t; };

  // Saved prompts: "/" and the start of a name, alone in the box, offers the prompts so named, the
  // user's own then their teams' (kept on the account page); the chosen one's text goes in the box.
  const PROMPTS = JSON.parse($("prompts-data").textContent);
  function promptMenu() {
    const typed = /^\/([\w-]*)$/.exec($("question").value);
    if (!typed) return false;
    const render = (p) => {
      const name = document.createElement("strong"); name.textContent = `/${p.name}`;
      const text = document.createElement("span");
      text.textContent = p.text.length > 90 ? `${p.text.slice(0, 89)}…` : p.text;
      return p.team ? [name, " ", tag(p.team), " ", text] : [name, " ", text];  // a team's, kept by its admins
    };
    showMenu("Saved prompts", PROMPTS.filter((p) => p.name.startsWith(typed[1].toLowerCase())), render, usePrompt);
    return true;
  }
  function usePrompt(p) {
    const box = $("question");
    box.value = p.text;
    autosize();
    closeMenu();
    box.focus();
    // A blank to fill ("Summarise {{topic}} for a newcomer") is selected, to be typed over; Tab
    // goes on to the next one (past the last, out of the box as ever).
    const blank = /\{\{[^{}\n]{0,60}\}\}/.exec(box.value);
    if (blank) box.setSelectionRange(blank.index, blank.index + blank[0].length);
    else box.setSelectionRange(box.value.length, box.value.length);
  }
  function nextBlank(box) {  // the next blank after the caret; none left: Tab leaves the box as ever
    const blanks = /\{\{[^{}\n]{0,60}\}\}/g;
    blanks.lastIndex = box.selectionEnd;
    const blank = blanks.exec(box.value);
    if (!blank) return false;
    box.setSelectionRange(blank.index, blank.index + blank[0].length);
    return true;
  }

  // Documents: "#" and part of a name, where the caret is, offers the ready documents of every
  // collection read so named; the chosen one joins the documents the conversation asks about, and
  // "#name" leaves the box.
  let documentTimer = 0, documentAsk = 0;  // each look-up numbered: only the latest may open the list
  function hashAt() {
    const box = $("question"), before = box.value.slice(0, box.selectionStart);
    const m = /(^|\s)#([^\s#]{0,60})$/.exec(before);
    return m ? { term: m[2], start: m.index + m[1].length, end: before.length } : null;
  }
  function collectionName(id) {
    const input = document.querySelector(`#scope input[name=collection][value="${id}"]`);
    return input && input.nextSibling ? input.nextSibling.textContent.trim() : "";  // the label's name
  }
  function documentMenu() {  // boxMenu has voided any look-up before this one
    const found = hashAt(), ask = documentAsk;
    if (!found) return false;
    documentTimer = setTimeout(async () => {
      let docs;
      try {
        docs = await api(`/api/v1/documents?status=ready&limit=8&q=${encodeURIComponent(found.term)}`);
      } catch { return; }
      if (ask !== documentAsk) return;  // typed on, or closed with Esc, meanwhile
      const chosen = new Set(documentScope.map((d) => d.id));
      const render = (d) => {
        const title = document.createElement("strong"); title.textContent = d.title;
        const where = collectionName(d.collection_id);
        return where ? [title, " ", tag(where)] : [title];
      };
      showMenu("Documents", docs.filter((d) => !chosen.has(d.id)), render, useDocument);
    }, 150);
    return true;
  }
  function useDocument(d) {
    const box = $("question"), found = hashAt();
    if (found) {
      box.value = box.value.slice(0, found.start) + box.value.slice(found.end).replace(/^ +/, "");
      box.setSelectionRange(found.start, found.start);
    }
    setDocuments([...documentScope, { id: d.id, title: d.title }]);
    autosize();
    closeMenu();
    box.focus();
  }
  function boxMenu() {
    menuAt = 0;
    clearTimeout(documentTimer); documentAsk++;  // a look-up for what was typed before is void
    if (!promptMenu() && !documentMenu()) closeMenu();
  }
  $("question").addEventListener("input", boxMenu);

  $("question").addEventListener("keydown", (e) => {
    if (e.key === "Escape") documentAsk++;  // a list still being looked up stays closed too
    if (e.key === "Tab" && !e.shiftKey && !menuChoices.length && nextBlank(e.target)) { e.preventDefault(); return; }
    if (menuChoices.length) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        menuAt = (menuAt + (e.key === "ArrowDown" ? 1 : -1) + menuChoices.length) % menuChoices.length;
        rerenderMenu();
        return;
      }
      if (e.key === "Enter" || e.key === "Tab") { e.preventDefault(); menuUse(menuChoices[menuAt]); return; }
      if (e.key === "Escape") { e.stopPropagation(); closeMenu(); return; }
    }
    // Up in an empty box edits the last question, as in chat apps people know.
    if (e.key === "ArrowUp" && !e.target.value && !editing && !active) {
      const last = [...document.querySelectorAll("#messages .msg.user[data-message]")].pop();
      if (last) { e.preventDefault(); startEdit(last); return; }
    }
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("composer").requestSubmit(); }
  });
  function autosize() { const t = $("question"); t.style.height = "auto"; t.style.height = Math.min(t.scrollHeight, 220) + "px"; }
  $("question").addEventListener("input", autosize);
  $("stop").addEventListener("click", () => { if (active) send({ type: "stop", message_id: active.id }); });
  $("new-chat").addEventListener("click", newConversation);
  let searchTimer = 0;
  $("conversation-search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(loadConversations, 200);
  });
  $("older-conversations").addEventListener("click", () => loadConversations(true));
  function scopeChanged() {
    updateScopeLabel();
    localStorage.setItem(SCOPE, JSON.stringify(selectedCollections() || []));
  }
  $("scope").addEventListener("change", (e) => { if (e.target.name === "collection") scopeChanged(); });

  // The collections a user reads change while the page is open (a team shares one, an admin
  // deletes one, a teammate uploads): the menus and the empty state are brought up to date when the
  // scope menu opens, a new conversation starts, or the user comes back to the tab; in the
  // server's order, keeping what is chosen.
  $("scope").addEventListener("toggle", () => { if ($("scope").open) refreshCollections(); });
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") refreshCollections(); });
  async function refreshCollections() {
    const list = await fetch("/api/v1/collections", { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null)).catch(() => null);
    if (!list) return;
    describeCollections(list);
    const fieldset = $("scope").querySelector("fieldset");
    const labels = new Map([...fieldset.querySelectorAll("input[name=collection]")].map((i) => [Number(i.value), i.closest("label")]));
    const before = JSON.stringify(selectedCollections() || []);
    let previous = $("scope-documents");
    // Touched only where it changed: a box being clicked as the answer arrives keeps its click.
    for (const c of list) {
      let label = labels.get(c.id);
      const name = ` ${c.name} `;
      if (!label) {
        label = document.createElement("label");
        const box = document.createElement("input");
        box.type = "checkbox"; box.name = "collection"; box.value = String(c.id); box.disabled = documentScope.length > 0;
        const team = document.createElement("span"); team.className = "muted"; team.textContent = `· ${c.team}`;
        label.append(box, name, team);
      } else if (label.childNodes[1] && label.childNodes[1].textContent !== name) {
        label.childNodes[1].textContent = name;  // renamed
      }
      labels.delete(c.id);
      if (previous.nextElementSibling !== label) previous.after(label);
      previous = label;
    }
    labels.forEach((label) => label.remove());  // no longer the user's to read
    const none = fieldset.querySelector("p.muted");
    if (list.length && none) none.remove();
    else if (!list.length && !none) {
      const p = document.createElement("p"); p.className = "muted"; p.textContent = "No collections yet."; fieldset.append(p);
    }
    const select = $("attach-collection");
    if (select) {
      const chosen = select.value;
      select.replaceChildren(...list.filter((c) => c.writable).map((c) => new Option(`${c.name} · ${c.team}`, String(c.id))));
      if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
    }
    if (JSON.stringify(selectedCollections() || []) !== before) scopeChanged(); else updateScopeLabel();
  }
  // The empty state's "Docent answers from 2 collections you can read: handbook (3 documents), ...".
  function describeCollections(list) {
    suggestions = list.flatMap((c) => (c.starter_questions || []).map((question) => ({ collection: c.id, question })));
    const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
    const names = list.flatMap((c, i) => {
      const name = document.createElement("strong"); name.textContent = c.name;
      return [name, ` (${plural(c.documents, "document")})${i < list.length - 1 ? ", " : ""}`];
    });
    emptyState.querySelector("#empty-count").textContent = plural(list.length, "collection");
    emptyState.querySelector("#empty-names").replaceChildren(...names);
    emptyState.querySelector("#empty-scope").hidden = emptyState.querySelector("#empty-cites").hidden = !list.length;
    emptyState.querySelector("#empty-none").hidden = list.length > 0;
  }
  function closeSidebar() { document.body.classList.remove("sidebar-open"); $("toggle-sidebar").setAttribute("aria-expanded", "false"); }
  $("toggle-sidebar").addEventListener("click", () => {
    const open = document.body.classList.toggle("sidebar-open");
    $("toggle-sidebar").setAttribute("aria-expanded", String(open));
  });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") { $("source-panel").hidden = true; cancelEdit(); } });
  // The peers' shortcuts: Ctrl+Shift+O (⌘⇧O) starts a conversation, Ctrl+K (⌘K) searches them.
  document.addEventListener("keydown", (e) => {
    if (!(e.ctrlKey || e.metaKey) || e.altKey) return;
    const key = e.key.toLowerCase();
    if (key === "o" && e.shiftKey) { e.preventDefault(); $("new-chat").click(); }
    else if (key === "k" && !e.shiftKey) { e.preventDefault(); document.body.classList.add("sidebar-open"); $("toggle-sidebar").setAttribute("aria-expanded", "true"); $("conversation-search").focus(); }
  });

  // Start: reopen the conversation in the URL, or the one whose answer was streaming at reload.
  $("question").disabled = false;
  $("send").disabled = false;
  connect();
  loadConversations();
  showUsage();
  setScope(chosenScope());
  const saved = JSON.parse(sessionStorage.getItem(ACTIVE) || "null");
  const fromUrl = new URLSearchParams(location.search).get("c");
  const about = new URLSearchParams(location.search).get("document");  // the library's "Ask"
  if (about && !fromUrl) {
    api(`/api/v1/documents/${encodeURIComponent(about)}`)
      .then((d) => setDocuments([{ id: d.id, title: d.title }]))
      .catch(() => showComposerError("That document is not one you can read; questions search your collections."));
  } else if (saved && (!fromUrl || fromUrl === saved.conversation_id)) openConversation(saved.conversation_id, saved.message_id);
  else if (fromUrl) openConversation(fromUrl);
})();
